"""Reference renderings of chat templates by Hugging Face transformers, for tests/text/chat_template_test.cpp.

Usage: chat_template_reference.py JOBS.json OUT.json

JOBS.json is a list of jobs, each
  {"id": str, "messages": [...], "add_generation_prompt": bool, "kwargs": {...}, "tools": list or null,
   "now": unix seconds for strftime_now,
   and either "source": the template with "bos_token"/"eos_token": str or null (passed as apply_chat_template passes
   the tokenizer's special tokens), or "tokenizer_config": a tokenizer_config.json whose chat_template, bos_token and
   eos_token are used as a tokenizer loaded from it would use them}.
OUT.json maps each id to {"text": rendering} or {"error": "ExceptionType: message"}.

The renderer is transformers' own: utils.chat_template_utils.render_jinja_template, what
PreTrainedTokenizerBase.apply_chat_template calls (same sandboxed Jinja environment, special tokens passed the same
way, None-valued message keys dropped), with the template chosen by PreTrainedTokenizerBase.get_chat_template (which
raises when a tokenizer has none). Loading whole tokenizers would take seconds each; one process renders every job,
since importing transformers takes a second too.
"""

import datetime as _datetime
import json
import sys
import types

import transformers
from transformers.utils import chat_template_utils


def fix_clock(now):
    """strftime_now() reads datetime.now() in chat_template_utils; pin it to `now` (local time, as emlab does)."""

    class FixedDatetime(_datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return _datetime.datetime.fromtimestamp(now, tz)

    chat_template_utils.datetime = FixedDatetime


def token_content(value):
    return value.get("content") if isinstance(value, dict) else value


def from_tokenizer_config(path, tools):
    """(template, bos, eos) as a tokenizer loaded from this tokenizer_config.json would use them."""
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    template = config.get("chat_template")
    if isinstance(template, list):
        template = {t["name"]: t["template"] for t in template}
    holder = types.SimpleNamespace(chat_template=template)
    source = transformers.PreTrainedTokenizerBase.get_chat_template(holder, None, tools)
    return source, token_content(config.get("bos_token")), token_content(config.get("eos_token"))


def render(job):
    fix_clock(job.get("now", 0))
    messages = job["messages"]
    kwargs = dict(job.get("kwargs") or {})
    gen = bool(job.get("add_generation_prompt", False))
    tools = job.get("tools")
    if "tokenizer_config" in job:
        source, bos, eos = from_tokenizer_config(job["tokenizer_config"], tools)
    else:
        source, bos, eos = job["source"], job.get("bos_token"), job.get("eos_token")
    for key, value in (("bos_token", bos), ("eos_token", eos)):
        if value is not None:
            kwargs.setdefault(key, value)
    # apply_chat_template drops None-valued message keys before rendering; do the same.
    messages = [{k: v for k, v in m.items() if v is not None} for m in messages]
    rendered, _ = chat_template_utils.render_jinja_template(
        conversations=[messages],
        tools=tools,
        documents=None,
        chat_template=source,
        add_generation_prompt=gen,
        **kwargs,
    )
    return rendered[0]


def main():
    jobs_path, out_path = sys.argv[1], sys.argv[2]
    with open(jobs_path, encoding="utf-8") as f:
        jobs = json.load(f)
    out = {}
    for job in jobs:
        try:
            out[job["id"]] = {"text": render(job)}
        except Exception as e:  # the template refused the conversation: the test expects emlab to refuse it too
            out[job["id"]] = {"error": f"{type(e).__name__}: {e}"}
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
