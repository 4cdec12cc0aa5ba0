"""``/china-filing language zh|en|auto``: the language a channel (or a user's DM) is answered in.

Stored with the channel's settings (like its time zone); the Slack and Teams adapters read it into
``Request.language``. ``auto`` (the default) answers in the language each question or command is
written in. One reply in the other language is a ``--lang`` flag (or the button on every card) away.
"""

from __future__ import annotations

import inspect

from content.i18n import msg, t
from handlers.request import LanguageChoice, NotAvailableError, Reply, Request, UsageError, echo
from handlers.router import LANGUAGE_CHOICES, Desk, router

# What people type besides the codes.
_WORDS: dict[str, LanguageChoice] = {
    "chinese": "zh", "中文": "zh", "汉语": "zh", "zh-cn": "zh", "cn": "zh",
    "english": "en", "英文": "en", "英语": "en", "自动": "auto",
}


def parse_language(text: str) -> LanguageChoice:
    word = text.strip().casefold()
    if word in LANGUAGE_CHOICES:
        return word  # type: ignore[return-value]
    if word in _WORDS:
        return _WORDS[word]
    raise UsageError(msg("language_usage", value=echo(text, 20)))


@router.subcommand(
    "/china-filing", "language", usage="/china-filing language zh|en|auto",
    summary="answer in Chinese, English, or the language each question is asked in (default auto)", changes_state=True,
)
async def language(request: Request, desk: Desk, args: str) -> Reply:
    store = desk.store
    if store is None or not hasattr(store, "set_channel_language"):
        raise NotAvailableError(msg("language_needs_store"))
    if not request.channel:
        raise NotAvailableError(msg("language_needs_channel"))
    if not args.strip():
        lang = request.answer_language(args)
        current = request.language
        name = t(f"lang_name.{current}", lang)
        reply = Reply(kind="reminder", title=t("language_title", lang, name=name), text="", language=lang,
                      summary=t("language_current", lang, name=name))
        return reply.model_copy(update={"text": desk.library.render("reminder_notice", lang=lang, reply=reply)})
    choice = parse_language(args)
    result = store.set_channel_language(request.platform, request.workspace, request.channel, choice)
    if inspect.isawaitable(result):
        await result
    # Confirmed in the language chosen (for auto, in the language the command was typed in).
    lang = choice if choice != "auto" else request.model_copy(update={"language": "auto"}).answer_language(args)
    name = t(f"lang_name.{choice}", lang)
    summary = t("language_set_auto", lang) if choice == "auto" else t("language_set", lang, name=name)
    reply = Reply(kind="reminder", title=t("language_title", lang, name=name), text="", summary=summary,
                  language=lang, ephemeral=False)
    return reply.model_copy(update={"text": desk.library.render("reminder_notice", lang=lang, reply=reply)})
