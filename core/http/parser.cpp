// core/http/parser.cpp -- the HTTP/1.1 request parser.
//
// One template, `parse_with<Scan>`, is instantiated once per scanning path, so a
// parse picks its path once and the byte scans are direct calls. Every decision is
// made from bytes at positions the scan has reached, in order, and a limit is
// enforced by clipping the view the scan may read: so a prefix of a request either
// says "incomplete" or gives exactly the answer the whole request gives. That is
// what makes restart-from-the-start correct for splits at any byte.
#include "core/http/parser.h"

#include <algorithm>
#include <cstring>

#include "core/http/scan.h"

namespace pp::http {
namespace {

// RFC 9112 2.2 asks servers to skip at least one empty line before a request
// (old clients send CRLF after a POST body); a bounded number keeps a peer from
// streaming them forever.
constexpr int kMaxLeadingEmptyLines = 4;
// A chunk-size line (hex size plus extensions) longer than this is refused: no real
// client sends kilobytes of chunk extensions.
constexpr std::size_t kMaxChunkLine = 4096;

ParseResult need_more() {
  return {};
}

ParseResult fail(int status, std::string_view why) {
  ParseResult r;
  r.status = ParseStatus::error;
  r.error_status = status;
  r.close_after = true;
  r.reason = why;
  return r;
}

ParseResult done(std::size_t consumed, bool keep_alive) {
  ParseResult r;
  r.status = ParseStatus::complete;
  r.consumed = consumed;
  r.close_after = !keep_alive;
  return r;
}

constexpr char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c;
}

// `lower` must already be lower case.
bool iequals(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (ascii_lower(s[i]) != lower[i]) return false;
  return true;
}

constexpr bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

const char* skip_ows(const char* p, const char* end) {
  while (p < end && is_ows(*p)) ++p;
  return p;
}

// Calls `f` with each trimmed element of a comma-separated list (RFC 9110 5.6.1),
// empty ones included; stops early when `f` returns false.
template <class F>
bool for_each_element(std::string_view list, F&& f) {
  for (;;) {
    std::size_t comma = list.find(',');
    if (!f(trim_ows(list.substr(0, comma)))) return false;
    if (comma == std::string_view::npos) return true;
    list.remove_prefix(comma + 1);
  }
}

// Content-Length = 1*DIGIT, or a list of identical ones (RFC 9110 8.6 lets a
// recipient accept "42, 42"). Anything else, including overflow, is invalid.
bool parse_content_length(std::string_view value, std::uint64_t& out) {
  bool have = false;
  std::uint64_t first = 0;
  return for_each_element(value,
                          [&](std::string_view e) {
                            if (e.empty()) return false;
                            std::uint64_t n = 0;
                            for (char c : e) {
                              if (c < '0' || c > '9') return false;
                              if (n > (UINT64_MAX - 9) / 10) return false;
                              n = n * 10 + static_cast<unsigned>(c - '0');
                            }
                            if (have && n != first) return false;
                            have = true;
                            first = n;
                            return true;
                          }) &&
         (out = first, true);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  char l = ascii_lower(c);
  if (l >= 'a' && l <= 'f') return l - 'a' + 10;
  return -1;
}

enum class Line : std::uint8_t { field, end, need_more, bad };

// One field line at `p` (or the empty line ending the section). On `field` and
// `end`, `p` moves past the line's CRLF; on `need_more` and `bad` it stays.
template <class Scan>
Line parse_field_line(const char*& p, const char* end, Header& h, std::string_view& why) {
  const char* s = p;
  if (*s == '\r') {
    if (end - s < 2) return Line::need_more;
    if (s[1] != '\n') return why = "bare CR", Line::bad;
    p = s + 2;
    return Line::end;
  }
  if (is_ows(*s)) return why = "obs-fold or whitespace before a field line", Line::bad;
  const char* colon = Scan::token(s, end);
  if (colon == end) return Line::need_more;
  if (*colon != ':') {
    if (colon == s) return why = "invalid field name", Line::bad;
    if (is_ows(*colon)) return why = "whitespace before colon", Line::bad;
    return why = "invalid character in field name", Line::bad;
  }
  if (colon == s) return why = "empty field name", Line::bad;
  const char* v = colon + 1;
  const char* cr = Scan::value(v, end);
  if (cr == end) return Line::need_more;
  if (*cr != '\r') return why = "invalid character in field value", Line::bad;
  if (end - cr < 2) return Line::need_more;
  if (cr[1] != '\n') return why = "bare CR", Line::bad;
  h.name = {s, static_cast<std::size_t>(colon - s)};
  h.value = trim_ows({v, static_cast<std::size_t>(cr - v)});
  p = cr + 2;
  return Line::field;
}

// quoted-string (RFC 9110 5.6.4) starting at the opening quote. Returns the byte
// after the closing quote, `end` when more bytes are needed, or nullptr if invalid.
const char* skip_quoted(const char* p, const char* end) {
  for (++p; p < end; ++p) {
    unsigned char c = static_cast<unsigned char>(*p);
    if (c == '"') return p + 1;
    if (c == '\\') {
      if (++p == end) return end;
      c = static_cast<unsigned char>(*p);
    }
    if (!detail::kValueTable[c]) return nullptr;
  }
  return end;
}

// How the message body is framed, gathered from the header fields.
struct Framing {
  bool have_cl = false;
  std::uint64_t content_length = 0;
  bool have_te = false;
  bool te_chunked = false;       // "chunked" appeared
  bool te_chunked_last = false;  // ... and was the last coding
  bool te_repeated = false;      // "chunked" appeared twice
  bool te_unknown = false;       // another coding appeared
  bool conn_close = false;
  bool conn_keep_alive = false;
  int hosts = 0;
};

// RFC 9112 3.2 / RFC 3986 3.2.2: Host = uri-host [ ":" port ], where uri-host is an
// IP-literal in brackets or reg-name characters (unreserved, pct-encoded, sub-delims).
// Anything else (spaces, '/', '@', '\\', controls) is 400: such values are how
// requests get routed to the wrong virtual host or poison caches downstream.
bool valid_host(std::string_view v) {
  for (char c : v) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!ok) {
      switch (c) {
        case '-': case '.': case '_': case '~': case '%': case '!': case '$': case '&':
        case '\'': case '(': case ')': case '*': case '+': case ',': case ';': case '=':
        case ':': case '[': case ']':
          ok = true;
          break;
        default:
          break;
      }
    }
    if (!ok) return false;
  }
  return true;
}

// Records what a field means for framing; false (with `why`) for a 400.
bool note_field(const Header& h, Framing& f, std::string_view& why) {
  switch (h.name.size()) {
    case 4:
      if (iequals(h.name, "host")) {
        ++f.hosts;
        if (!valid_host(h.value)) return why = "invalid Host", false;
      }
      return true;
    case 10:
      if (iequals(h.name, "connection")) {
        for_each_element(h.value, [&](std::string_view e) {
          if (iequals(e, "close")) f.conn_close = true;
          if (iequals(e, "keep-alive")) f.conn_keep_alive = true;
          return true;
        });
      }
      return true;
    case 14:
      if (iequals(h.name, "content-length")) {
        std::uint64_t n = 0;
        if (!parse_content_length(h.value, n)) return why = "invalid Content-Length", false;
        if (f.have_cl && n != f.content_length) return why = "conflicting Content-Length", false;
        f.have_cl = true;
        f.content_length = n;
      }
      return true;
    case 17:
      if (iequals(h.name, "transfer-encoding")) {
        f.have_te = true;
        for_each_element(h.value, [&](std::string_view e) {
          if (e.empty()) return true;  // RFC 9110 5.6.1: ignore empty list elements
          if (iequals(e, "chunked")) {
            if (f.te_chunked) f.te_repeated = true;
            f.te_chunked = true;
            f.te_chunked_last = true;
          } else {
            f.te_unknown = true;
            f.te_chunked_last = false;
          }
          return true;
        });
      }
      return true;
    default:
      return true;
  }
}

// Splits the request-target into path and query (RFC 9112 3.2).
void split_target(Request& r) {
  std::string_view t = r.target;
  r.query = {};
  if (t.front() != '/') {
    std::size_t scheme = t.find("://");
    if (scheme == std::string_view::npos) {  // asterisk-form "*" or authority-form
      r.path = t == "*" ? t : std::string_view{};
      return;
    }
    std::size_t start = t.find_first_of("/?", scheme + 3);
    if (start == std::string_view::npos || t[start] == '?') {  // absolute-form, no path
      if (start != std::string_view::npos) r.query = t.substr(start + 1);
      r.path = "/";
      return;
    }
    t.remove_prefix(start);
  }
  std::size_t q = t.find('?');
  r.path = t.substr(0, q);
  if (q != std::string_view::npos) r.query = t.substr(q + 1);
}

}  // namespace

bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

std::string_view Request::header(std::string_view name) const {
  for (const Header& h : fields())
    if (ascii_iequals(h.name, name)) return h.value;
  return {};
}

bool Request::has_header(std::string_view name) const {
  for (const Header& h : fields())
    if (ascii_iequals(h.name, name)) return true;
  return false;
}

RequestParser::RequestParser(const ParserOptions& options) : options_(options) {
  options_.max_headers = std::min(options_.max_headers, kMaxHeaders);
  if (!path_supported(options_.path)) options_.path = Path::scalar;
}

void RequestParser::reset() {
  if (!chunked_) return;
  chunked_->state.active = false;
  chunked_->state.trailer_offsets.clear();
}

ParseResult RequestParser::parse(std::string_view input, Request& out) {
  ParseResult r;
  switch (resolve_path(options_.path)) {
    case Path::avx2:
      r = parse_with<detail::Avx2Scan>(input, out);
      break;
    case Path::sse42:
      r = parse_with<detail::Sse42Scan>(input, out);
      break;
    default:
      r = parse_with<detail::ScalarScan>(input, out);
      break;
  }
  if (r.status != ParseStatus::incomplete && chunked_) chunked_->state.active = false;
  return r;
}

template <class Scan>
ParseResult RequestParser::parse_with(std::string_view input, Request& r) {
  const char* const begin = input.data();
  const char* const end = begin + input.size();
  const char* p = begin;

  for (int i = 0; i < kMaxLeadingEmptyLines && p < end && *p == '\r'; ++i) {
    if (end - p < 2) return need_more();
    if (p[1] != '\n') return fail(400, "bare CR");
    p += 2;
  }

  // Request line: method SP request-target SP HTTP-version CRLF, read through a
  // view clipped at the limit plus CRLF; needing a byte past it means 414.
  const std::size_t line_cap = options_.max_request_line + 2;
  const bool line_capped = static_cast<std::size_t>(end - p) >= line_cap;
  const char* const lend = line_capped ? p + line_cap : end;
  auto line_short = [&] { return line_capped ? fail(414, "request line too long") : need_more(); };
  if (p == lend) return line_short();
  const char* m = Scan::token(p, lend);
  if (m == lend) return line_short();
  if (m == p || *m != ' ') return fail(400, "invalid method");
  const char* t0 = m + 1;
  const char* t = Scan::target(t0, lend);
  if (t == lend) return line_short();
  if (t == t0 || *t != ' ') return fail(400, "invalid request-target");
  const char* v = t + 1;
  static constexpr char kVersion[] = "HTTP/#.#\r\n";  // '#': a digit
  // Fast path for the version nearly every request carries; the loop below decides
  // everything else (and which of 400 / need-more / 414 a partial version gets).
  const bool is_11 = lend - v >= 10 && std::memcmp(v, "HTTP/1.1\r\n", 10) == 0;
  for (int i = 0; !is_11 && i < 10; ++i) {
    if (v + i == lend) return line_short();
    char c = v[i];
    bool ok = kVersion[i] == '#' ? (c >= '0' && c <= '9') : c == kVersion[i];
    if (!ok) return fail(400, "invalid HTTP version");
  }
  if (v[5] != '1' || (v[7] != '0' && v[7] != '1')) return fail(505, "HTTP version not supported");

  r.method = {p, static_cast<std::size_t>(m - p)};
  r.target = {t0, static_cast<std::size_t>(t - t0)};
  split_target(r);
  r.minor_version = v[7] - '0';
  r.num_headers = 0;
  r.trailers = {};
  r.body = {};
  r.chunked = false;

  // Header section, likewise clipped: its field lines must fit the limit, and the
  // empty line that ends it must follow within the view.
  p = v + 10;
  const std::size_t hdr_cap = options_.max_header_bytes + 2;
  const bool hdr_capped = static_cast<std::size_t>(end - p) >= hdr_cap;
  const char* const hend = hdr_capped ? p + hdr_cap : end;
  auto hdr_short = [&] { return hdr_capped ? fail(431, "header section too large") : need_more(); };
  Framing f;
  for (;;) {
    if (p == hend) return hdr_short();
    if (*p != '\r' && r.num_headers == options_.max_headers)
      return fail(431, "too many header fields");
    Header h;
    std::string_view why;
    Line kind = parse_field_line<Scan>(p, hend, h, why);
    if (kind == Line::end) break;
    if (kind == Line::need_more) return hdr_short();
    if (kind == Line::bad) return fail(400, why);
    r.headers[r.num_headers++] = h;
    if (!note_field(h, f, why)) return fail(400, why);
  }

  // RFC 9112 3.2: an HTTP/1.1 request has exactly one Host; none has two.
  if (f.hosts > 1) return fail(400, "duplicate Host");
  if (r.minor_version == 1 && f.hosts == 0) return fail(400, "missing Host");
  // RFC 9112 9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive".
  r.keep_alive = !f.conn_close && (r.minor_version == 1 || f.conn_keep_alive);

  if (f.have_te) {
    // RFC 9112 6.1 / 6.3: the framing is ambiguous; answering and closing is the
    // only way to keep a front-end and us agreeing on where requests end.
    if (f.have_cl) return fail(400, "both Content-Length and Transfer-Encoding");
    if (r.minor_version == 0) return fail(400, "Transfer-Encoding in HTTP/1.0");
    if (f.te_unknown) return fail(501, "unsupported transfer coding");
    if (!f.te_chunked_last || f.te_repeated) return fail(400, "invalid Transfer-Encoding");
    r.chunked = true;
    ParseResult chunked = decode_chunked<Scan>(input, static_cast<std::size_t>(p - begin), r);
    if (chunked.status == ParseStatus::incomplete) chunked.head_complete = true;
    return chunked;
  }
  if (f.have_cl) {
    if (f.content_length > options_.max_body) return fail(413, "body too large");
    if (static_cast<std::uint64_t>(end - p) < f.content_length) {
      ParseResult waiting = need_more();
      waiting.head_complete = true;
      return waiting;
    }
    r.body = {p, static_cast<std::size_t>(f.content_length)};
    p += f.content_length;
  }
  return done(static_cast<std::size_t>(p - begin), r.keep_alive);
}

template <class Scan>
ParseResult RequestParser::decode_chunked(std::string_view input, std::size_t body_start,
                                          Request& r) {
  using Phase = ChunkState::Phase;
  if (!chunked_) chunked_ = std::make_unique<Chunked>();
  ChunkState& s = chunked_->state;
  std::string& body = chunked_->body;
  if (!s.active || s.body_start != body_start) {
    s.active = true;
    s.phase = Phase::size_line;
    s.body_start = body_start;
    s.pos = body_start;
    s.remaining = 0;
    s.trailer_offsets.clear();
    body.clear();
  }
  const char* const begin = input.data();
  const char* const end = begin + input.size();
  for (;;) {
    const char* p = begin + s.pos;
    switch (s.phase) {
      case Phase::size_line: {
        // chunk-size [ chunk-ext ] CRLF, with
        // chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )
        const bool capped = static_cast<std::size_t>(end - p) >= kMaxChunkLine + 2;
        const char* const lend = capped ? p + kMaxChunkLine + 2 : end;
        auto line_short = [&] {
          return capped ? fail(400, "chunk-size line too long") : need_more();
        };
        std::uint64_t size = 0;
        bool overflow = false;
        const char* q = p;
        for (int d; q < lend && (d = hex_value(*q)) >= 0; ++q) {
          if (size >> 60) overflow = true;
          size = (size << 4) | static_cast<unsigned>(d);
        }
        if (q == lend) return line_short();
        if (q == p) return fail(400, "invalid chunk size");
        while (*q != '\r') {
          const char* e = skip_ows(q, lend);
          if (e == lend) return line_short();
          if (*e != ';') return fail(400, "invalid chunk extension");
          e = skip_ows(e + 1, lend);
          const char* n = Scan::token(e, lend);
          if (n == lend) return line_short();
          if (n == e) return fail(400, "invalid chunk extension");
          e = skip_ows(n, lend);
          if (e == lend) return line_short();
          if (*e != '=') {
            q = n;
            continue;
          }
          e = skip_ows(e + 1, lend);
          if (e == lend) return line_short();
          if (*e == '"') {
            n = skip_quoted(e, lend);
            if (n == nullptr) return fail(400, "invalid chunk extension");
          } else {
            n = Scan::token(e, lend);
            if (n == e) return fail(400, "invalid chunk extension");
          }
          if (n == lend) return line_short();
          q = n;
        }
        if (lend - q < 2) return line_short();
        if (q[1] != '\n') return fail(400, "bare CR");
        if (overflow || size > options_.max_body - body.size()) return fail(413, "body too large");
        s.pos = static_cast<std::size_t>(q + 2 - begin);
        // Every byte a client sends counts against a limit: the framing (size lines with
        // their extensions, CRLFs) may add max_header_bytes to the decoded body, no more.
        // Without this, 1-byte chunks with long extensions buffer gigabytes per request.
        if (s.pos - s.body_start - body.size() > options_.max_header_bytes)
          return fail(413, "chunk framing too large");
        if (size == 0) {
          s.phase = Phase::trailers;
          s.trailer_start = s.pos;
        } else {
          s.phase = Phase::data;
          s.remaining = size;
        }
        break;
      }
      case Phase::data: {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(s.remaining, end - p));
        body.append(p, n);
        s.pos += n;
        s.remaining -= n;
        if (s.remaining != 0) return need_more();
        s.phase = Phase::data_end;
        break;
      }
      case Phase::data_end: {
        if (p == end) return need_more();
        if (*p != '\r') return fail(400, "chunk data longer than its size");
        if (end - p < 2) return need_more();
        if (p[1] != '\n') return fail(400, "bare CR");
        s.pos += 2;
        s.phase = Phase::size_line;
        break;
      }
      case Phase::trailers: {
        const char* const ts = begin + s.trailer_start;
        const std::size_t cap = options_.max_header_bytes + 2;
        const bool capped = static_cast<std::size_t>(end - ts) >= cap;
        const char* const tend = capped ? ts + cap : end;
        for (;;) {
          if (p == tend) return capped ? fail(431, "trailer section too large") : need_more();
          if (*p != '\r' && s.trailer_offsets.size() == options_.max_headers)
            return fail(431, "too many trailer fields");
          Header h;
          std::string_view why;
          Line kind = parse_field_line<Scan>(p, tend, h, why);
          if (kind == Line::need_more)
            return capped ? fail(431, "trailer section too large") : need_more();
          if (kind == Line::bad) return fail(400, why);
          if (kind == Line::end) break;
          s.trailer_offsets.push_back(
              {static_cast<std::size_t>(h.name.data() - begin), h.name.size(),
               static_cast<std::size_t>(h.value.data() - begin), h.value.size()});
          s.pos = static_cast<std::size_t>(p - begin);
        }
        chunked_->trailers.clear();
        for (const auto& o : s.trailer_offsets)
          chunked_->trailers.push_back(
              {{begin + o.name, o.name_len}, {begin + o.value, o.value_len}});
        r.trailers = chunked_->trailers;
        r.body = body;
        s.active = false;
        return done(static_cast<std::size_t>(p - begin), r.keep_alive);
      }
    }
  }
}

}  // namespace pp::http
