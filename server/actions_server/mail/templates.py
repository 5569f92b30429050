"""Mail templates: `<name>.html.j2`, `<name>.txt.j2`, and a subject.

The subject comes from a `{% block subject %}` in either template, or from
`<name>.subject.j2`. HTML templates autoescape their data; text templates do
not. A variable the data lacks is an error (StrictUndefined), not a blank.
"""

from __future__ import annotations

import html as html_module
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from . import MailError


@dataclass(frozen=True, slots=True, kw_only=True)
class Rendered:
    subject: str | None
    text: str | None
    html: str | None


class Templates:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(folder),
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html.j2", "htm.j2"), default=False
            ),
            undefined=jinja2.StrictUndefined,
            auto_reload=True,
        )

    def render(self, name: str, data: dict[str, Any]) -> Rendered:
        html = self._template(f"{name}.html.j2")
        text = self._template(f"{name}.txt.j2")
        if html is None and text is None:
            raise MailError(
                f"no mail template {name!r}: write {name}.html.j2 or {name}.txt.j2 in {self.folder}"
            )
        try:
            subject = self._subject(name, html, text, data)
            return Rendered(
                subject=subject,
                html=_body(html, data) if html is not None else None,
                text=_body(text, data) if text is not None else None,
            )
        except jinja2.TemplateError as exc:
            raise MailError(f"mail template {name!r}: {exc}") from None

    def _template(self, filename: str) -> jinja2.Template | None:
        try:
            return self.environment.get_template(filename)
        except jinja2.TemplateNotFound:
            return None
        except jinja2.TemplateSyntaxError as exc:
            raise MailError(f"{filename}:{exc.lineno}: {exc.message}") from None

    def _subject(
        self,
        name: str,
        html: jinja2.Template | None,
        text: jinja2.Template | None,
        data: dict[str, Any],
    ) -> str | None:
        for template in (html, text):
            if template is not None and "subject" in template.blocks:
                context = template.new_context(data)
                subject = "".join(template.blocks["subject"](context)).strip()
                # A subject is plain text: undo the escaping of an HTML template.
                return html_module.unescape(subject) if template is html else subject
        separate = self._template(f"{name}.subject.j2")
        return str(separate.render(data)).strip() if separate is not None else None


def _body(template: jinja2.Template, data: dict[str, Any]) -> str:
    """The template rendered without its subject block (which belongs in the header)."""
    context = template.new_context(data)
    if "subject" in context.blocks:
        context.blocks["subject"] = [lambda _context: iter(())]
    return "".join(template.root_render_func(context)).strip()
