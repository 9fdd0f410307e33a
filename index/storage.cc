#include "index/storage.h"

#include <algorithm>
#include <iterator>

namespace lookalike {

StatusOr<std::vector<int64_t>> MatchEveryKey(const Filter& filter, const KeyMatcher& match_key) {
  std::vector<int64_t> result;
  bool first = true;
  for (const auto& [key, values] : filter.any_of) {
    ASSIGN_OR_RETURN(std::vector<int64_t> matches, match_key(key, values));
    std::sort(matches.begin(), matches.end());
    matches.erase(std::unique(matches.begin(), matches.end()), matches.end());
    if (first) {
      result = std::move(matches);
      first = false;
    } else {
      std::vector<int64_t> both;
      std::set_intersection(result.begin(), result.end(), matches.begin(), matches.end(),
                            std::back_inserter(both));
      result = std::move(both);
    }
    if (result.empty()) break;
  }
  return result;
}

}  // namespace lookalike
