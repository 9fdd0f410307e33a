// The web page's files (server/web/), compiled into the server by
// server/web/embed.cmake: HttpApi serves them at "/" (index.html) and
// "/<name>". No build step, no CDN: the page works offline.
#pragma once

#include <cstddef>
#include <vector>

namespace lookalike {

struct WebAsset {
  const char* path;          // "/index.html", "/app.js"
  const char* content_type;  // "text/html; charset=utf-8"
  const char* etag;          // "\"<16 hex digits of SHA-256>\"", quotes included
  const unsigned char* data;
  size_t size;
};

const std::vector<WebAsset>& WebAssets();

}  // namespace lookalike
