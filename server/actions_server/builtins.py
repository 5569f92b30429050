"""The framework's own actions, and the app's registry with them in it.

Built-in actions belong to no module of the app and have no routes: today one,
mail delivery. They are added here, above the registry, so that `registry.py`
stays a pure index that imports no feature module.
"""

from __future__ import annotations

from .config import Config
from .mail.action import send_mail_action
from .manifests.model import ActionSpec, RetryPolicy
from .registry import Registry, load_registry


def builtin_actions(config: Config) -> tuple[ActionSpec, ...]:
    """The framework's own actions: mail delivery (`actions_server.sendMail`)."""
    retry = RetryPolicy(**config.mail.retry)
    return (send_mail_action(retry, config.mail.timeout_seconds),)


def load_app(config: Config) -> Registry:
    """The app's registry: every manifest the config names, and the built-ins."""
    return load_registry(config, builtins=builtin_actions(config))
