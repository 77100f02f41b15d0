"""The set of loaded templates, looked up by id and version or by message type."""

from __future__ import annotations

from collections.abc import Iterable

from broker.errors import TemplateError
from broker.templating.model import TEMPLATE_DEFINITION_INVALID, TEMPLATE_UNKNOWN
from broker.templating.template import Template


class TemplateRegistry:
    """Every version of every template, immutable once built.

    When several template ids serve one message type, exactly one of them must name
    that type in ``default_for``; otherwise construction fails, so the choice of the
    default is made in reviewed data rather than by load order.
    """

    __slots__ = ("_by_id", "_defaults")

    def __init__(self, templates: Iterable[Template]) -> None:
        by_id: dict[str, dict[str, Template]] = {}
        for template in templates:
            versions = by_id.setdefault(template.id, {})
            if template.version in versions:
                raise TemplateError(
                    f"{template.definition.source}: id: {template.id} {template.version} "
                    "is defined twice",
                    code=TEMPLATE_DEFINITION_INVALID,
                )
            versions[template.version] = template
        self._by_id = by_id
        self._defaults = self._pick_defaults()

    def _pick_defaults(self) -> dict[str, str]:
        serving: dict[str, list[Template]] = {}
        for template_id in sorted(self._by_id):
            seen: set[str] = set()
            for template in self._newest_first(template_id):
                for message_type in template.message_types:
                    if message_type not in seen:
                        seen.add(message_type)
                        serving.setdefault(message_type, []).append(template)
        defaults: dict[str, str] = {}
        for message_type, serving_templates in serving.items():
            candidates = serving_templates
            if len(candidates) > 1:
                candidates = [t for t in candidates if message_type in t.definition.default_for]
            if len(candidates) != 1:
                ids = ", ".join(sorted({t.id for t in serving_templates}))
                raise TemplateError(
                    f"message type {message_type!r} is served by {ids}: exactly one must list it "
                    "in default_for",
                    code=TEMPLATE_DEFINITION_INVALID,
                )
            defaults[message_type] = candidates[0].id
        return defaults

    def _newest_first(self, template_id: str) -> list[Template]:
        versions = self._by_id[template_id].values()
        return sorted(versions, key=lambda t: t.version_key, reverse=True)

    def get(self, template_id: str, version: str) -> Template:
        """The template ``template_id`` at exactly ``version``.

        Raises:
            TemplateError: code ``TEMPLATE_UNKNOWN`` if the id or version is not loaded.
        """
        template = self._by_id.get(template_id, {}).get(version)
        if template is None:
            raise TemplateError(
                f"unknown template {template_id!r} version {version!r}", code=TEMPLATE_UNKNOWN
            )
        return template

    def latest(self, template_id: str) -> Template:
        """The highest version of ``template_id``.

        Raises:
            TemplateError: code ``TEMPLATE_UNKNOWN`` if the id is not loaded.
        """
        if template_id not in self._by_id:
            raise TemplateError(f"unknown template {template_id!r}", code=TEMPLATE_UNKNOWN)
        return self._newest_first(template_id)[0]

    def default_for_message_type(self, message_type: str) -> Template:
        """The newest version, among templates serving ``message_type``, of the default one.

        Raises:
            TemplateError: code ``TEMPLATE_UNKNOWN`` if no template serves it.
        """
        template_id = self._defaults.get(message_type)
        if template_id is None:
            raise TemplateError(
                f"no template serves message type {message_type!r}", code=TEMPLATE_UNKNOWN
            )
        return next(t for t in self._newest_first(template_id) if message_type in t.message_types)

    def templates(self) -> list[Template]:
        """Every loaded template, ordered by id then version."""
        return [
            template
            for template_id in sorted(self._by_id)
            for template in reversed(self._newest_first(template_id))
        ]

    def message_types(self) -> list[str]:
        """The message types some template serves."""
        return sorted(self._defaults)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_id.values())
