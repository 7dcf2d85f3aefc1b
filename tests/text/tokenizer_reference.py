"""Reference ids and texts from Hugging Face's `tokenizers` for tests/text/tokenizer_reference_test.cpp.

Usage: tokenizer_reference.py WORK_DIR

Reads WORK_DIR/request.json ({"lines": [...], "shared": dir or "", "toyworld": dir}), writes one
folder per synthetic tokenizer (WORK_DIR/<case>/tokenizer.json, built here with `tokenizers`' own
trainer and classes in the styles of Llama 2 / Mistral, Llama 2 with Metaspace, Gemma, Llama 3
and byte-level files with added tokens) and WORK_DIR/expected.json:

  {"cases": [{"name", "dir", "lines": [i...], "ids": [[...]...], "text": [...],
              "sub": [i...], "ids_raw": [[...]...], "ids_special": [[...]...], "text_skip": [...],
              "decode_ids": [[...]...], "decode_text": [...], "info": {...}}]}

ids/text: encode(line, add_special_tokens=False) and decode(ids, skip_special_tokens=False) for
every line in "lines"; for the lines in "sub": ids_raw with encode_special_tokens (emlab's
parse_special=false), ids_special with add_special_tokens=True, text_skip with
skip_special_tokens=True. decode_ids/decode_text: random id sequences and their decoded text
(not for byte-level decoders: emlab returns raw bytes where `tokenizers` puts U+FFFD). info: what
the lines exercised (byte-fallback and unk ids, matches per added token, lines whose ids
ignore_merges changes).
One process for the whole suite: importing and loading the big vocabularies costs seconds.
"""
import json
import os
import random
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

SPM = "\u2581"  # ▁
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
         r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def trained(lines, pre_tokenizer, normalizer=None, vocab_size=1200, alphabet=None, limit_alphabet=None):
    """Vocabulary (token -> rank) and merges that `tokenizers`' BPE trainer learns from the lines."""
    t = Tokenizer(models.BPE())
    t.normalizer = normalizer
    t.pre_tokenizer = pre_tokenizer
    kwargs = dict(vocab_size=vocab_size, min_frequency=2, show_progress=False, special_tokens=[])
    if alphabet is not None:
        kwargs["initial_alphabet"] = alphabet
    if limit_alphabet is not None:
        kwargs["limit_alphabet"] = limit_alphabet
    t.train_from_iterator(lines, trainers.BpeTrainer(**kwargs))
    model = json.loads(t.to_str())["model"]
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return [tok for tok, _ in vocab], merges


def sp_vocab(pieces, specials):
    """SentencePiece layout: special tokens, then <0x00>..<0xFF>, then the learned pieces."""
    tokens = list(specials) + ["<0x%02X>" % b for b in range(256)]
    tokens += [p for p in pieces if p not in set(tokens)]
    return {t: i for i, t in enumerate(tokens)}


def flagged_tokens(non_ascii):
    """Added tokens exercising every flag (content, special, normalized, lstrip, rstrip, single_word)."""
    tokens = [
        AddedToken("<|im_end|>", special=True, normalized=False),
        AddedToken("[INST]", special=True, normalized=False, lstrip=True),
        AddedToken("[/INST]", special=True, normalized=False, rstrip=True),
        AddedToken("<tool>", special=False, normalized=False),
        AddedToken("hello", special=False, normalized=True, single_word=True),
        AddedToken("world", special=False, normalized=False, single_word=True),
        AddedToken(" the", special=False, normalized=True),
        AddedToken("<mask>", special=True, normalized=True, lstrip=True, rstrip=True),
        AddedToken("<sep>", special=True, normalized=False, lstrip=True, rstrip=True, single_word=True),
    ]
    if non_ascii:  # non-ASCII content (decoded as text only by SentencePiece-style decoders)
        tokens.append(AddedToken("caf\u00e9", special=False, normalized=True))
        tokens.append(AddedToken("na\u00efve", special=False, normalized=False))
    return tokens


class Builder:
    def __init__(self, work, lines):
        self.work = work
        self.lines = lines
        sp_pieces, self.sp_merges = trained(
            lines, pre_tokenizers.Metaspace(replacement=SPM, prepend_scheme="always", split=True),
            vocab_size=1400, limit_alphabet=60)
        self.sp_pieces = sp_pieces
        bl_pieces, self.bl_merges = trained(
            lines, pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated"),
                                            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
            vocab_size=1400, alphabet=pre_tokenizers.ByteLevel.alphabet())
        self.bl_pieces = bl_pieces

    def sp(self, specials=("<unk>", "<s>", "</s>"), byte_fallback=True, fuse_unk=True, unk="<unk>"):
        vocab = sp_vocab(self.sp_pieces, specials)
        return Tokenizer(models.BPE(vocab=vocab, merges=self.sp_merges, unk_token=unk, fuse_unk=fuse_unk,
                                    byte_fallback=byte_fallback, dropout=None))

    def byte_level(self, specials, extra_words=(), ignore_merges=False):
        vocab = {}
        for t in self.bl_pieces:
            vocab.setdefault(t, len(vocab))
        for w in extra_words:  # whole words without the merges that would build them
            vocab.setdefault(w, len(vocab))
        tok = Tokenizer(models.BPE(vocab=vocab, merges=self.bl_merges, ignore_merges=ignore_merges))
        tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
        return tok

    def save(self, name, tok):
        folder = os.path.join(self.work, name)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "tokenizer.json")
        tok.save(path)
        return folder, Tokenizer.from_file(path)  # what the file says, read back


def llama2_decoder(strip=True):
    steps = [decoders.Replace(SPM, " "), decoders.ByteFallback(), decoders.Fuse()]
    if strip:
        steps.append(decoders.Strip(content=" ", left=1, right=0))
    return decoders.Sequence(steps)


def sp_specials(tok, names):
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in names])


def synthetic_cases(b, lines):
    """(name, folder, tokenizer, line indices, info) for every synthetic style."""
    every = list(range(len(lines)))
    some = every[::5]
    cases = []

    def add(name, tok, indices, info=None):
        folder, loaded = b.save(name, tok)
        cases.append((name, folder, loaded, indices, info or {}))

    # Llama 2 / Mistral as published (legacy): Prepend + Replace normalizer, no pre-tokenizer.
    legacy_norm = normalizers.Sequence([normalizers.Prepend(SPM), normalizers.Replace(" ", SPM)])
    t = b.sp()
    t.normalizer = legacy_norm
    t.decoder = llama2_decoder()
    t.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    sp_specials(t, ["<unk>", "<s>", "</s>"])
    add("llama2", t, every)

    t = b.sp()
    t.normalizer = legacy_norm
    t.decoder = llama2_decoder()
    t.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)])
    sp_specials(t, ["<unk>", "<s>", "</s>"])
    t.add_tokens(flagged_tokens(non_ascii=True))
    add("llama2-added", t, every)

    for fuse in (True, False):  # no byte fallback: unknown characters become <unk>
        t = b.sp(byte_fallback=False, fuse_unk=fuse)
        t.normalizer = legacy_norm
        t.decoder = llama2_decoder()
        sp_specials(t, ["<unk>", "<s>", "</s>"])
        add("llama2-unk" + ("" if fuse else "-nofuse"), t, some)

    # Llama 2 in transformers >= 4.41 (legacy=False): Metaspace pre-tokenizer, no normalizer.
    for scheme, split in (("first", False), ("always", True), ("never", True), ("first", True)):
        t = b.sp()
        t.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPM, prepend_scheme=scheme, split=split)
        if scheme == "first" and not split:
            t.decoder = llama2_decoder()
        else:
            t.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(replacement=SPM, prepend_scheme=scheme)])
        t.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
        sp_specials(t, ["<unk>", "<s>", "</s>"])
        t.add_tokens(flagged_tokens(non_ascii=True))
        add("metaspace-%s%s" % (scheme, "-split" if split else ""), t, every if scheme == "first" and not split else some)

    # Gemma: Replace normalizer, Split(" ", merged_with_previous) or no pre-tokenizer, no Strip.
    gemma_specials = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")
    for pre in ("split", "none"):
        t = b.sp(specials=gemma_specials)
        t.normalizer = normalizers.Replace(" ", SPM)
        if pre == "split":
            t.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous", invert=False)
        t.decoder = llama2_decoder(strip=False)
        t.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
        sp_specials(t, list(gemma_specials) + ["<start_of_turn>", "<end_of_turn>"])
        add("gemma-" + pre, t, every if pre == "split" else some)

    # Split behaviours (and Digits) on the Gemma normalizer.
    for behavior in ("removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"):
        t = b.sp()
        t.normalizer = normalizers.Replace(" ", SPM)
        t.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(r"\d+|[,.!?]"), behavior=behavior, invert=False),
            pre_tokenizers.Split(SPM, behavior=behavior, invert=behavior in ("merged_with_previous", "contiguous")),
        ])
        t.decoder = llama2_decoder(strip=False)
        sp_specials(t, ["<unk>", "<s>", "</s>"])
        add("split-" + behavior, t, some)
    t = b.sp()
    t.normalizer = normalizers.Replace(" ", SPM)
    t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                               pre_tokenizers.Split(SPM, behavior="merged_with_next")])
    t.decoder = llama2_decoder(strip=False)
    sp_specials(t, ["<unk>", "<s>", "</s>"])
    add("split-digits", t, some)

    # Llama 3: byte-level, its regex, ignore_merges, whole words in the vocabulary without merges.
    counts = {}
    for line in lines:
        for w in line.split():
            if w.isalpha() and len(w) > 3:
                counts[w] = counts.get(w, 0) + 1
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    extra = []
    for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:200]:
        for form in (w, " " + w):
            extra.append("".join(piece for piece, _ in bl.pre_tokenize_str(form)))
    llama3_specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
    for ignore in (True, False):
        t = b.byte_level(llama3_specials, extra_words=extra, ignore_merges=ignore)
        t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False),
                                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        t.decoder = decoders.ByteLevel()
        t.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", t.token_to_id("<|begin_of_text|>"))]),
        ])
        add("llama3" if ignore else "llama3-merges", t, every if ignore else some)

    # Byte-level with added tokens of every flag, NFC, and ByteLevel's own regex / prefix space.
    t = b.byte_level(["<|endoftext|>", "<s>", "</s>"])
    t.normalizer = normalizers.NFC()
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    t.decoder = decoders.ByteLevel()
    t.add_tokens(flagged_tokens(non_ascii=False))
    add("bytelevel-added", t, every)
    t = b.byte_level(["<|endoftext|>"])
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    t.decoder = decoders.ByteLevel()
    add("bytelevel-prefix", t, some)
    t = b.byte_level(["<|endoftext|>"])
    t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r"\s+"), behavior="merged_with_next"),
                                               pre_tokenizers.Digits(individual_digits=False),
                                               pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False)])
    t.decoder = decoders.ByteLevel()
    add("bytelevel-split-prefix", t, some)
    return cases


def real_cases(shared, toyworld, lines):
    every = list(range(len(lines)))
    cases = []
    tok_dir = os.path.join(shared, "data", "tokenizers") if shared else ""
    if tok_dir and os.path.isdir(tok_dir):
        for name in ("qwen3", "mistral-7b-v0.1"):
            folder = os.path.join(tok_dir, name)
            cases.append((name, folder, Tokenizer.from_file(os.path.join(folder, "tokenizer.json")), every, {}))
        # Qwen2.5 has vocab.json + merges.txt: built as transformers' Qwen2Tokenizer builds it.
        folder = os.path.join(tok_dir, "qwen2.5")
        t = Tokenizer(models.BPE.from_file(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")))
        t.normalizer = normalizers.NFC()
        t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2), behavior="isolated", invert=False),
                                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        t.decoder = decoders.ByteLevel()
        config = json.load(open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8"))
        for key, a in sorted(config["added_tokens_decoder"].items(), key=lambda kv: int(kv[0])):
            token = AddedToken(a["content"], special=a["special"], normalized=a["normalized"], lstrip=a["lstrip"],
                               rstrip=a["rstrip"], single_word=a["single_word"])
            (t.add_special_tokens if a["special"] else t.add_tokens)([token])
            assert t.token_to_id(a["content"]) == int(key), a
        cases.append(("qwen2.5", folder, t, every, {}))
        # GPT-2's encoder.json + vocab.bpe (no config: <|endoftext|> is special).
        folder = os.path.join(tok_dir, "gpt2")
        t = Tokenizer(models.BPE.from_file(os.path.join(folder, "encoder.json"), os.path.join(folder, "vocab.bpe")))
        t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        t.decoder = decoders.ByteLevel()
        t.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
        cases.append(("gpt2", folder, t, list(range(0, len(lines), 3)), {}))
    if toyworld and os.path.isfile(os.path.join(toyworld, "tokenizer.json")):
        cases.append(("toyworld", toyworld, Tokenizer.from_file(os.path.join(toyworld, "tokenizer.json")), every, {}))
    return cases


def random_ids(tok, rng, count=150):
    """Id sequences that encode never makes: byte tokens cut mid-character, specials anywhere."""
    size = tok.get_vocab_size(with_added_tokens=True)
    out = []
    for _ in range(count):
        n = rng.randint(1, 12)
        out.append([rng.randrange(size) if rng.random() < 0.6 else rng.randrange(min(size, 300)) for _ in range(n)])
    return out


def main():
    work = sys.argv[1]
    request = json.load(open(os.path.join(work, "request.json"), encoding="utf-8"))
    lines = request["lines"]
    builder = Builder(work, lines)
    cases = real_cases(request.get("shared", ""), request.get("toyworld", ""), lines)
    cases += synthetic_cases(builder, lines)
    rng = random.Random(0)
    out = []
    for name, folder, tok, indices, info in cases:
        text_lines = [lines[i] for i in indices]
        tok.encode_special_tokens = False
        ids = [e.ids for e in tok.encode_batch(text_lines, add_special_tokens=False)]
        sub = indices[::3]
        sub_lines = [lines[i] for i in sub]
        sub_ids = [ids[k] for k in range(0, len(indices), 3)]
        special = [e.ids for e in tok.encode_batch(sub_lines, add_special_tokens=True)]
        tok.encode_special_tokens = True
        raw = [e.ids for e in tok.encode_batch(sub_lines, add_special_tokens=False)]
        tok.encode_special_tokens = False
        case = {
            "name": name, "dir": folder, "lines": indices, "ids": ids,
            "text": tok.decode_batch(ids, skip_special_tokens=False),
            "sub": sub, "ids_raw": raw, "ids_special": special,
            "text_skip": tok.decode_batch(sub_ids, skip_special_tokens=True),
            "info": info,
        }
        # What the lines exercised: byte-fallback and unk ids, and each added token.
        counts = {}
        for line_ids in ids:
            for i in line_ids:
                counts[i] = counts.get(i, 0) + 1
        vocab = tok.get_vocab(with_added_tokens=False)
        fallback = {vocab[t] for t in vocab if len(t) == 6 and t.startswith("<0x") and t.endswith(">")}
        info["byte_fallback"] = sum(counts.get(i, 0) for i in fallback)
        unk = tok.token_to_id("<unk>")
        info["unk"] = counts.get(unk, 0) if unk is not None else 0
        info["added"] = {a.content: counts.get(i, 0) for i, a in tok.get_added_tokens_decoder().items()}
        if type(tok.decoder).__name__ != "ByteLevel":  # byte-level: emlab decodes raw bytes
            case["decode_ids"] = random_ids(tok, rng)
            case["decode_text"] = tok.decode_batch(case["decode_ids"], skip_special_tokens=False)
        out.append(case)
    by_name = {c["name"]: c for c in out}
    if "llama3" in by_name and "llama3-merges" in by_name:  # ignore_merges must matter somewhere
        plain = dict(zip(by_name["llama3-merges"]["lines"], by_name["llama3-merges"]["ids"]))
        by_name["llama3"]["info"]["differs_from_merges"] = sum(
            1 for i, ids in zip(by_name["llama3"]["lines"], by_name["llama3"]["ids"]) if i in plain and plain[i] != ids)
    with open(os.path.join(work, "expected.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps({"cases": out}, ensure_ascii=False))  # dumps: the C encoder, dump is slow


if __name__ == "__main__":
    main()
