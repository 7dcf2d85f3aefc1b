#include "text/normalize.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/uchar.h>

#include <algorithm>
#include <cctype>

#include "emlab/error.h"
#include "emlab/byte_level.h"

namespace emlab::text {

NormalForm normal_form_from_name(const std::string& name, const std::string& context) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::toupper(c); });
  if (n == "NONE" || n.empty()) return NormalForm::None;
  if (n == "NFC") return NormalForm::NFC;
  if (n == "NFD") return NormalForm::NFD;
  if (n == "NFKC") return NormalForm::NFKC;
  if (n == "NFKD") return NormalForm::NFKD;
  throw InputError(context + ": unsupported normalizer '" + name +
                   "' (expected none, NFC, NFD, NFKC or NFKD)");
}

const char* normal_form_name(NormalForm form) {
  switch (form) {
    case NormalForm::NFC: return "NFC";
    case NormalForm::NFD: return "NFD";
    case NormalForm::NFKC: return "NFKC";
    case NormalForm::NFKD: return "NFKD";
    default: return "none";
  }
}

namespace {

const icu::Normalizer2* instance(NormalForm form) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* n = nullptr;
  switch (form) {
    case NormalForm::NFC: n = icu::Normalizer2::getNFCInstance(status); break;
    case NormalForm::NFD: n = icu::Normalizer2::getNFDInstance(status); break;
    case NormalForm::NFKC: n = icu::Normalizer2::getNFKCInstance(status); break;
    case NormalForm::NFKD: n = icu::Normalizer2::getNFKDInstance(status); break;
    default: return nullptr;
  }
  if (U_FAILURE(status)) throw Error(std::string("ICU normaliser unavailable: ") + u_errorName(status));
  return n;
}

// Normalises one well-formed stretch, appending to *out.
void normalize_valid(const icu::Normalizer2* n, std::string_view text, std::string* out) {
  UErrorCode status = U_ZERO_ERROR;
  icu::StringPiece piece(text.data(), static_cast<int32_t>(text.size()));
  icu::StringByteSink<std::string> sink(out);
  n->normalizeUTF8(0, piece, sink, nullptr, status);
  if (U_FAILURE(status)) throw Error(std::string("Unicode normalisation failed: ") + u_errorName(status));
}

}  // namespace

bool normalize(NormalForm form, std::string_view text, std::string* out) {
  if (form == NormalForm::None) return false;
  // ASCII is invariant under every normal form.
  if (std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }))
    return false;
  const icu::Normalizer2* n = instance(form);
  if (utf8_valid(text)) {
    UErrorCode status = U_ZERO_ERROR;
    icu::StringPiece piece(text.data(), static_cast<int32_t>(text.size()));
    if (n->isNormalizedUTF8(piece, status) && U_SUCCESS(status)) return false;
    out->clear();
    normalize_valid(n, text, out);
    return true;
  }
  // Keep malformed bytes as they are; normalise the well-formed runs between them.
  out->clear();
  size_t i = 0, run = 0;
  while (i < text.size()) {
    size_t at = i;
    if (utf8_next(text, &i) >= 0) continue;
    if (at > run) normalize_valid(n, text.substr(run, at - run), out);
    out->append(text.substr(at, i - at));
    run = i;
  }
  if (run < text.size()) normalize_valid(n, text.substr(run), out);
  return true;
}

void Normalizer::set_unicode_form(NormalForm form) {
  steps_.erase(std::remove_if(steps_.begin(), steps_.end(),
                              [](const NormalizerStep& s) { return s.kind == NormalizerStep::Kind::Unicode; }),
               steps_.end());
  if (form != NormalForm::None) {
    NormalizerStep step;
    step.form = form;
    steps_.insert(steps_.begin(), step);
  }
}

bool Normalizer::apply(std::string_view text, std::string* out) const {
  if (steps_.size() == 1 && steps_[0].kind == NormalizerStep::Kind::Unicode)
    return normalize(steps_[0].form, text, out);  // the byte-level families: one call, no copy
  std::string current(text), next;
  bool changed = false;
  for (const auto& step : steps_) {
    switch (step.kind) {
      case NormalizerStep::Kind::Unicode:
        if (normalize(step.form, current, &next)) current.swap(next), changed = true;
        break;
      case NormalizerStep::Kind::Prepend:
        if (!current.empty() && !step.pattern.empty()) current.insert(0, step.pattern), changed = true;
        break;
      case NormalizerStep::Kind::Replace: {
        if (step.pattern.empty()) break;
        size_t at = current.find(step.pattern);
        if (at == std::string::npos) break;
        next.clear();
        size_t from = 0;
        for (; at != std::string::npos; at = current.find(step.pattern, from)) {
          next.append(current, from, at - from).append(step.content);
          from = at + step.pattern.size();
        }
        next.append(current, from, std::string::npos);
        current.swap(next);
        changed = true;
        break;
      }
    }
  }
  if (changed) *out = std::move(current);
  return changed;
}

bool codepoint_is_space(char32_t c) { return u_isUWhiteSpace(static_cast<UChar32>(c)); }

bool codepoint_is_word(char32_t c) {
  UChar32 u = static_cast<UChar32>(c);
  if (u_hasBinaryProperty(u, UCHAR_ALPHABETIC) || u_hasBinaryProperty(u, UCHAR_JOIN_CONTROL)) return true;
  return (U_GET_GC_MASK(u) & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
}

}  // namespace emlab::text
