// tests/http/split_corpus.h -- pipelined inputs for the split-at-every-byte tests:
// valid pipelines (Content-Length, chunked with extensions and trailers, HTTP/1.0,
// empty lines) and pipelines that end in each kind of error. tests/fuzz/corpus/
// holds the same inputs as seeds.
#pragma once

#include <string>
#include <vector>

namespace pp::http::testing {

inline std::vector<std::string> split_corpus() {
  std::string long_value(300, 'v');
  return {
      // Valid pipelines.
      "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
      "GET /two?q=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"
      "HEAD /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",

      "POST /form HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\n"
      "hello world"
      "\r\nGET /after-crlf HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
      "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",

      "POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n"
      "6;name=value;flag\r\n world\r\n"
      "A ; q=\"quoted \\\" str;\"\r\n0123456789\r\n"
      "0\r\nX-Trailer: yes\r\nX-Sum: 42\r\n\r\n"
      "GET /next HTTP/1.1\r\nHost: a\r\n\r\n",

      "POST /c2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "000\r\n\r\n"
      "POST /c3 HTTP/1.1\r\nHost: a\r\ntransfer-encoding: Chunked\r\nConnection: close\r\n\r\n"
      "1\r\nx\r\n1f\r\n0123456789abcdef0123456789abcde\r\n0\r\n\r\n",

      "GET /" + std::string(70, 'p') + "?" + std::string(40, 'q') +
          " HTTP/1.1\r\nHost: example.org\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) "
          "AppleWebKit/537.36\r\nAccept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n"
          "Accept-Encoding: gzip, deflate, br\r\nX-Long: " +
          long_value +
          "\r\nX-Tabs:\tleft\t \r\nCookie: a=b; c=d\r\n\r\n"
          "GET /tail HTTP/1.1\r\nHost: example.org\r\n\r\n",

      "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
      "GET /c HTTP/1.0\r\n\r\n"
      "GET /d HTTP/1.1\r\nHo",

      // Pipelines that end in an error.
      "GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /bad HTTP/1.1\r\nHost : a\r\n\r\n",
      "GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /fold HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",
      "GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/2.0\r\nHost: a\r\n\r\n",
      "GET /ok HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\n"
      "Transfer-Encoding: gzip, chunked\r\n\r\n",
      "GET /ok HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "GET /ok HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
      "Content-Length: 2\r\n\r\nab",
      "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
      "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n",
      "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n",
      "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer: "
      "x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n",
      "GET /\x80 HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\nHost: a\r\n\r\n",
  };
}

}  // namespace pp::http::testing
