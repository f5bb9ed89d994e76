"""Suite-wide set-up: test settings come from the environment, like every deployment."""

import os

# The suite runs with production-like settings; the keys below exist only for tests.
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-deployment-0123456789abcdef")
os.environ.setdefault("AI_API_KEY", "sk-test-simulator-key")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("LOG_FORMAT", "json")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SESSION_COOKIE_SECURE", "false")
os.environ.setdefault("CSRF_COOKIE_SECURE", "false")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
