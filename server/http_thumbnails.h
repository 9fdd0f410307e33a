// Item thumbnails over HTTP, on the JSON API's port (server/http_api.h):
//
//   GET /collections/{name}/items/{id}/thumbnail      (and HEAD)
//
// {name} and {id} are percent-encoded path segments (an id may hold any
// character: "a/b c" is "a%2Fb%20c"). The answer is the JPEG stored with the
// item (CollectionSpec::thumbnail_size), image/jpeg, with a strong ETag (the
// FNV-1a 64 of the bytes, common/hash.h) and Cache-Control: no-cache: a
// browser keeps the picture and revalidates it, and If-None-Match with the
// current ETag is answered 304 without a body, so a re-upserted item shows
// its new picture at once and an unchanged one costs no transfer.
// The route is the GetThumbnail rpc (proto/lookalike/v1/lookalike.proto) read
// with GET: the same access rule with API keys (the read right on the
// collection, server/auth.cc), the same lookup, bytes, ETag and errors
// (LookalikeService::DoGetThumbnail), as Connect JSON errors: 404 not_found
// for an unknown collection or item or an item without a thumbnail, 400
// failed_precondition for a collection that keeps no thumbnails. Of the route
// itself: 404 not_found for a path of another shape under /collections/; 400
// invalid_argument for a malformed percent-encoding; 405 for a method other
// than GET or HEAD. The read runs on the service's handler pool under the same
// pending-request limit as the API methods, counted in the metrics as method
// "GetThumbnail".
#pragma once

#include <string>

#include "server/http_server.h"
#include "server/service.h"

namespace lookalike {

// "/collections/" + the collection and item paths below it start with this.
inline constexpr const char* kCollectionsPathPrefix = "/collections/";

// The path of item `id`'s thumbnail in `collection`, segments percent-encoded.
std::string ThumbnailPath(const std::string& collection, const std::string& id);

// Answers `request` (through `respond`, possibly later, from another thread)
// and returns true when its path is under kCollectionsPathPrefix; returns
// false, and leaves `respond` alone, otherwise.
bool HandleThumbnailRequest(LookalikeService* service, const HttpRequest& request,
                            const HttpServer::Respond& respond);

}  // namespace lookalike
