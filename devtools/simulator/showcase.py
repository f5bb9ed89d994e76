"""Blocks the simulator puts in a reply when the message names them, so that `make run` shows
every rendering path of the chat page: "table", "code" (or a language: python, javascript,
typescript, sql, bash, json, rust, go), "list", "heading", "math" and "long"."""

from __future__ import annotations

import re

_CODE = {
    "python": (
        "```python\nfrom dataclasses import dataclass\n\n\n@dataclass\nclass Budget:\n"
        "    limit_usd: float\n    spent_usd: float = 0.0\n\n    def left(self) -> float:\n"
        '        """What can still be spent."""\n        return max(self.limit_usd - self.spent_usd, 0.0)\n```'
    ),
    "javascript": (
        "```javascript\nasync function* tokens(response) {\n  const reader = response.body.getReader();\n"
        "  const decoder = new TextDecoder();\n  for (;;) {\n    const { done, value } = await reader.read();\n"
        "    if (done) return;\n    yield decoder.decode(value, { stream: true });\n  }\n}\n```"
    ),
    "typescript": (
        "```typescript\ninterface Usage {\n  promptTokens: number;\n  completionTokens: number;\n}\n\n"
        "const total = (u: Usage): number => u.promptTokens + u.completionTokens;\n```"
    ),
    "sql": (
        "```sql\nSELECT date_trunc('day', created_at) AS day, model, sum(cost_usd) AS cost\n"
        "FROM analytics_aicall\nGROUP BY 1, 2\nORDER BY 1 DESC;\n```"
    ),
    "bash": "```bash\npython -m venv .venv\n. .venv/bin/activate\npip install -r requirements.txt\n```",
    "json": '```json\n{"model": "gpt-4o-mini", "stream": true, "max_tokens": 512}\n```',
    "rust": (
        "```rust\nfn mean(values: &[f64]) -> Option<f64> {\n    if values.is_empty() {\n        return None;\n"
        "    }\n    Some(values.iter().sum::<f64>() / values.len() as f64)\n}\n```"
    ),
    "go": (
        "```go\nfunc retry(attempts int, f func() error) (err error) {\n\tfor i := 0; i < attempts; i++ {\n"
        "\t\tif err = f(); err == nil {\n\t\t\treturn nil\n\t\t}\n\t}\n\treturn err\n}\n```"
    ),
}
_ALIASES = {"js": "javascript", "ts": "typescript", "shell": "bash", "golang": "go"}

_TABLE = (
    "| Model | Input $/1M | Output $/1M | Context |\n"
    "| :--- | ---: | ---: | :---: |\n"
    "| gpt-4o-mini | 0.15 | 0.60 | 128k |\n"
    "| gpt-4o | 2.50 | 10.00 | 128k |\n"
    "| deepseek-chat | 0.27 | 1.10 | 64k |"
)
_LIST = (
    "1. Pick the **smallest** change that can be measured.\n"
    "2. Roll it out to a *canary* share of users.\n"
    "   - watch cost, errors and satisfaction\n"
    "   - compare with the control group\n"
    "3. Promote it, or ~~keep it~~ roll it back."
)
_HEADING = (
    "## Background\n\nWhy the change is worth making.\n\n"
    "### Steps\n\nWhat to do, in order.\n\n#### Notes\n\nWhat to watch afterwards."
)
_MATH = (
    "The cost of a call is $c = p \\cdot t_{in} + q \\cdot t_{out}$, and over a day:\n\n"
    "$$\nC = \\sum_{i=1}^{n} \\left(p\\, t_{in,i} + q\\, t_{out,i}\\right)\n$$"
)
_LONG = (
    "> A long answer, to see how the page scrolls and how the reply's footer stays in reach.",
    "Streaming answers matter most when they are long: the first words arrive after a fraction of "
    "a second, and the reader starts reading while the rest is still being generated.",
    "Each section below builds on the previous one; skim the headings first, then read the part "
    "that matches your question.",
)

# Whole words: "a_very_long_name" or "listen" name nothing.
_WORD = re.compile(r"\w+")


def showcase_blocks(user_text: str) -> list[str]:
    """The blocks a message asks for, in a fixed order (none for an ordinary question)."""
    words = {_ALIASES.get(w, w) for w in _WORD.findall(user_text.lower())}
    words |= {w[:-1] for w in words if w.endswith("s")}  # "tables", "headings", "lists"
    blocks: list[str] = []
    if "heading" in words:
        blocks.append(_HEADING)
    if "list" in words:
        blocks.append(_LIST)
    if "table" in words:
        blocks.append(_TABLE)
    languages = [language for language in _CODE if language in words]
    if not languages and "code" in words:
        languages = ["python"]
    blocks.extend(_CODE[language] for language in languages)
    if "math" in words:
        blocks.append(_MATH)
    if "long" in words:
        blocks.extend(_LONG)
    return blocks


def wants_long(user_text: str) -> bool:
    return "long" in _WORD.findall(user_text.lower())
