/*
 * The chat page (type="module"): wires the modules together and follows a reply that was being
 * written when the page was rendered.
 *
 * Plain ES2020 modules, no framework, no build step. The page is server-rendered
 * (templates/chat/chat.html); the scripts only enhance it. The modules, by what they do:
 *   page.js          elements, configuration, state, the screen-reader status line
 *   api.js           the JSON API (fetch with CSRF, errors as ApiError)
 *   composer.js      the message box, its counter, Send/Stop, the quota line
 *   actions.js       send, stop, regenerate, resume; the buttons in the message list
 *   stream.js        a reply over Server-Sent Events: offsets, reconnects, the end
 *   render.js        live Markdown while a reply streams (vendored markdown-it + DOMPurify)
 *   math.js          TeX math: its markdown-it rules and typesetting with KaTeX (loaded on use)
 *   messages.js      building messages, a finished reply from the API, feedback, scrolling
 *   conversation.js  title, sidebar entries, rename, delete
 *   drawer.js        the conversation list as a drawer on narrow screens
 *   errors.js, dom.js, footer.js, copy.js, waiting.js  error lines, DOM helpers, the reply
 *                    footer, copy buttons, waiting states
 *   scrollers.js     code blocks, tables and formulas that scroll sideways are tab stops
 * theme.js is a classic script loaded in <head>. The site's Content-Security-Policy forbids inline
 * scripts and inline style attributes, so everything here works on classes, attributes and the CSSOM.
 *
 * Streamed text is rendered by render.js (markdown-it without raw HTML, then DOMPurify with the
 * server's allow-list). Server HTML (already sanitised by chat.rendering) is inserted with
 * innerHTML only from the `done` event and the message API.
 */
import { messageApiUrl } from "./api.js";
import { sendMessage, stopReply, initMessageActions } from "./actions.js";
import { autoGrow, initComposer, updateCounter } from "./composer.js";
import { initConversationActions } from "./conversation.js";
import { initDrawer } from "./drawer.js";
import { enhanceMessages, followScrolling, scrollToBottom } from "./messages.js";
import { ACTIVE_STATUSES, app, el } from "./page.js";
import { attachStream, detachStream } from "./stream.js";

function start() {
  followScrolling();
  initComposer({ send: sendMessage, stop: stopReply });
  initMessageActions();
  initConversationActions({ beforeLeave: detachStream });
  initDrawer();

  updateCounter();
  autoGrow();
  enhanceMessages();
  scrollToBottom(true);

  // A reply still being written when the page was rendered: follow it.
  let article = null;
  const streamingId = app.dataset.streamingMessageId;
  if (streamingId) {
    article = el.list.querySelector(`.message[data-message-id="${CSS.escape(streamingId)}"]`);
  }
  if (!article) {
    article = Array.from(el.list.querySelectorAll('.message[data-role="assistant"]')).find((node) =>
      ACTIVE_STATUSES.includes(node.dataset.status)
    );
  }
  if (article) {
    attachStream(article, messageApiUrl(article.dataset.messageId, "stream"));
  } else if (window.matchMedia("(min-width: 48rem)").matches) {
    el.input.focus();
  }
  app.dataset.ready = "true"; // the composer and the buttons work from now on (tests wait for it)
}

if (app) start(); // login and sign-up pages load this file too
