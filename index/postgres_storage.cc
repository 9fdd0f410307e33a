#include "index/postgres_storage.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <unordered_map>
#include <utility>

namespace lookalike {
namespace {

constexpr int kScanBatchRows = 4096;

using Txn = PgConnection::Txn;

// Distinct values in first-occurrence order.
std::vector<std::string> Distinct(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  std::unordered_map<std::string, bool> seen;
  for (const auto& v : values) {
    if (seen.emplace(v, true).second) out.push_back(v);
  }
  return out;
}

// Metadata of `internal_ids`, by internal id.
StatusOr<std::unordered_map<int64_t, Metadata>> ReadMetadata(
    PgConnection& conn, int64_t collection_id, const std::vector<int64_t>& internal_ids) {
  std::unordered_map<int64_t, Metadata> out;
  if (internal_ids.empty()) return out;
  ASSIGN_OR_RETURN(PgResult r,
                   conn.Query("SELECT item, key, value FROM lookalike_metadata "
                              "WHERE collection_id = $1 AND item = ANY($2::int8[])",
                              PgParams().Int64(collection_id).Int64Array(internal_ids)));
  for (int i = 0; i < r.rows(); ++i) out[r.Int64(i, 0)][r.Text(i, 1)] = r.Text(i, 2);
  return out;
}

}  // namespace

PostgresStorage::PostgresStorage(std::shared_ptr<PgDatabase> db, PgDatabase::CatalogEntry entry)
    : db_(std::move(db)),
      id_(entry.id),
      spec_(std::move(entry.spec)),
      location_(db_->name() + " collection '" + spec_.name + "'") {}

StatusOr<std::unique_ptr<PostgresStorage>> PostgresStorage::Create(std::shared_ptr<PgDatabase> db,
                                                                   const CollectionSpec& spec) {
  ASSIGN_OR_RETURN(PgDatabase::CatalogEntry entry, db->CreateCollection(spec));
  return Open(std::move(db), std::move(entry));
}

std::unique_ptr<PostgresStorage> PostgresStorage::Open(std::shared_ptr<PgDatabase> db,
                                                       PgDatabase::CatalogEntry entry) {
  return std::unique_ptr<PostgresStorage>(new PostgresStorage(std::move(db), std::move(entry)));
}

Status PostgresStorage::CheckVector(int length) const {
  if (length != static_cast<int>(spec_.dim * sizeof(float))) {
    return DataLossError(location_ + ": stored vector has " + std::to_string(length) +
                         " bytes, expected " + std::to_string(spec_.dim * sizeof(float)));
  }
  return Status::Ok();
}

StatusOr<int64_t> PostgresStorage::NextSeq(PgConnection& conn, int64_t ids, int64_t* first_id) {
  ASSIGN_OR_RETURN(PgResult r, conn.Query("UPDATE lookalike_collections SET last_seq = last_seq + "
                                          "1, last_internal_id = last_internal_id + $2 "
                                          "WHERE id = $1 RETURNING last_seq, last_internal_id",
                                          PgParams().Int64(id_).Int64(ids)));
  if (r.rows() == 0) return NotFoundError(location_ + " was dropped");
  *first_id = r.Int64(0, 1) - ids + 1;
  return r.Int64(0, 0);
}

Status PostgresStorage::WriteTombstones(PgConnection& conn,
                                        const std::vector<int64_t>& internal_ids, int64_t seq) {
  if (internal_ids.empty()) return Status::Ok();
  return conn
      .Query(
          "INSERT INTO lookalike_tombstones(collection_id, internal_id, seq) "
          "SELECT $1, unnest($2::int8[]), $3 "
          "ON CONFLICT (collection_id, internal_id) DO UPDATE SET seq = EXCLUDED.seq",
          PgParams().Int64(id_).Int64Array(internal_ids).Int64(seq))
      .status();
}

StatusOr<std::vector<std::pair<std::string, int64_t>>> PostgresStorage::RemoveRows(
    PgConnection& conn, const std::vector<std::string>& external_ids, int64_t seq) {
  std::vector<std::pair<std::string, int64_t>> removed;
  if (external_ids.empty()) return removed;
  ASSIGN_OR_RETURN(PgResult r, conn.Query("DELETE FROM lookalike_items WHERE collection_id = $1 "
                                          "AND external_id = ANY($2::text[]) "
                                          "RETURNING external_id, internal_id",
                                          PgParams().Int64(id_).TextArray(external_ids)));
  std::vector<int64_t> internal_ids;
  for (int i = 0; i < r.rows(); ++i) {
    removed.emplace_back(r.Text(i, 0), r.Int64(i, 1));
    internal_ids.push_back(r.Int64(i, 1));
  }
  if (internal_ids.empty()) return removed;
  for (const char* sql : {"DELETE FROM lookalike_metadata WHERE collection_id = $1 "
                          "AND item = ANY($2::int8[])",
                          "DELETE FROM lookalike_thumbnails WHERE collection_id = $1 "
                          "AND item = ANY($2::int8[])"}) {
    RETURN_IF_ERROR(conn.Query(sql, PgParams().Int64(id_).Int64Array(internal_ids)).status());
  }
  RETURN_IF_ERROR(WriteTombstones(conn, internal_ids, seq));
  return removed;
}

StatusOr<Storage::UpsertResult> PostgresStorage::Upsert(const std::vector<const Item*>& items) {
  ASSIGN_OR_RETURN(auto conn, db_->Borrow());
  const size_t n = items.size();
  UpsertResult result;
  auto body = [&]() -> Status {
    result = UpsertResult();
    int64_t first_id = 0;
    ASSIGN_OR_RETURN(result.seq, NextSeq(*conn, static_cast<int64_t>(n), &first_id));
    // previous[i]: the index of the earlier occurrence of item i's id, or -1.
    std::unordered_map<std::string, size_t> latest;
    std::vector<std::string> distinct;
    std::vector<int64_t> previous(n, -1);
    for (size_t i = 0; i < n; ++i) {
      auto [it, inserted] = latest.emplace(items[i]->id, i);
      if (inserted) {
        distinct.push_back(items[i]->id);
      } else {
        previous[i] = static_cast<int64_t>(it->second);
        it->second = i;
      }
    }
    ASSIGN_OR_RETURN(auto existing, RemoveRows(*conn, distinct, result.seq));
    const std::unordered_map<std::string, int64_t> stored(existing.begin(), existing.end());
    // Same results as writing the items one after the other: an occurrence
    // replaced later in the batch gets an internal id that is tombstoned.
    std::vector<int64_t> superseded;
    result.internal_ids.resize(n);
    for (size_t i = 0; i < n; ++i) {
      result.internal_ids[i] = first_id + static_cast<int64_t>(i);
      if (previous[i] < 0) {
        auto it = stored.find(items[i]->id);
        if (it != stored.end()) result.replaced.push_back(it->second);
      } else {
        result.internal_ids[previous[i]] = -1;
        result.replaced.push_back(first_id + previous[i]);
        superseded.push_back(first_id + previous[i]);
      }
    }
    RETURN_IF_ERROR(WriteTombstones(*conn, superseded, result.seq));
    PgCopyBuffer rows, metadata, thumbnails;
    for (size_t i = 0; i < n; ++i) {
      const int64_t internal_id = result.internal_ids[i];
      if (internal_id < 0) continue;
      const Item& item = *items[i];
      rows.BeginRow(5);
      rows.Int64(id_);
      rows.Int64(internal_id);
      rows.Text(item.id);
      rows.Bytes(item.vector.data(), item.vector.size() * sizeof(float));
      rows.Int64(result.seq);
      for (const auto& kv : item.metadata) {
        metadata.BeginRow(4);
        metadata.Int64(id_);
        metadata.Int64(internal_id);
        metadata.Text(kv.first);
        metadata.Text(kv.second);
      }
      if (!item.thumbnail.empty()) {
        thumbnails.BeginRow(3);
        thumbnails.Int64(id_);
        thumbnails.Int64(internal_id);
        thumbnails.Bytes(item.thumbnail.data(), item.thumbnail.size());
      }
    }
    if (rows.rows() > 0) {
      RETURN_IF_ERROR(
          conn->CopyIn("COPY lookalike_items(collection_id, internal_id, external_id, vector, seq) "
                       "FROM STDIN (FORMAT binary)",
                       rows.Finish()));
    }
    if (metadata.rows() > 0) {
      RETURN_IF_ERROR(
          conn->CopyIn("COPY lookalike_metadata(collection_id, item, key, value) "
                       "FROM STDIN (FORMAT binary)",
                       metadata.Finish()));
    }
    if (thumbnails.rows() > 0) {
      RETURN_IF_ERROR(
          conn->CopyIn("COPY lookalike_thumbnails(collection_id, item, image) "
                       "FROM STDIN (FORMAT binary)",
                       thumbnails.Finish()));
    }
    return NotifyChange(*conn, spec_.name, result.seq);  // followers wake at COMMIT
  };
  RETURN_IF_ERROR(conn->InTransaction(Txn::kWrite, body));
  return result;
}

StatusOr<Storage::DeleteResult> PostgresStorage::Delete(const std::vector<std::string>& ids) {
  ASSIGN_OR_RETURN(auto conn, db_->Borrow());
  DeleteResult result;
  auto body = [&]() -> Status {
    result = DeleteResult();
    int64_t unused = 0;
    ASSIGN_OR_RETURN(result.seq, NextSeq(*conn, 0, &unused));
    const std::vector<std::string> distinct = Distinct(ids);
    ASSIGN_OR_RETURN(auto removed, RemoveRows(*conn, distinct, result.seq));
    const std::unordered_map<std::string, int64_t> by_id(removed.begin(), removed.end());
    for (const auto& id : distinct) {
      auto it = by_id.find(id);
      if (it != by_id.end()) result.removed.push_back(it->second);
    }
    return NotifyChange(*conn, spec_.name, result.seq);  // followers wake at COMMIT
  };
  RETURN_IF_ERROR(conn->InTransaction(Txn::kWrite, body));
  return result;
}

StatusOr<std::vector<std::optional<Item>>> PostgresStorage::Get(
    const std::vector<std::string>& ids) {
  ASSIGN_OR_RETURN(auto conn, db_->Borrow());
  std::vector<std::optional<Item>> out;
  auto body = [&]() -> Status {
    out.assign(ids.size(), std::nullopt);
    ASSIGN_OR_RETURN(PgResult r,
                     conn->Query("SELECT external_id, internal_id, vector FROM lookalike_items "
                                 "WHERE collection_id = $1 AND external_id = ANY($2::text[])",
                                 PgParams().Int64(id_).TextArray(Distinct(ids))));
    std::unordered_map<std::string, int> row_of;
    std::vector<int64_t> internal_ids;
    for (int i = 0; i < r.rows(); ++i) {
      RETURN_IF_ERROR(CheckVector(r.Length(i, 2)));
      row_of[r.Text(i, 0)] = i;
      internal_ids.push_back(r.Int64(i, 1));
    }
    ASSIGN_OR_RETURN(auto metadata, ReadMetadata(*conn, id_, internal_ids));
    for (size_t k = 0; k < ids.size(); ++k) {
      auto it = row_of.find(ids[k]);
      if (it == row_of.end()) continue;
      Item item;
      item.id = ids[k];
      item.vector.resize(spec_.dim);
      std::memcpy(item.vector.data(), r.Bytes(it->second, 2), spec_.dim * sizeof(float));
      auto m = metadata.find(r.Int64(it->second, 1));
      if (m != metadata.end()) item.metadata = m->second;
      out[k] = std::move(item);
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(conn->InTransaction(Txn::kRead, body));
  return out;
}

StatusOr<std::optional<std::string>> PostgresStorage::ReadThumbnail(const std::string& id) {
  ASSIGN_OR_RETURN(auto conn, db_->Borrow());
  ASSIGN_OR_RETURN(
      PgResult r,
      conn->Query("SELECT t.image FROM lookalike_items i LEFT JOIN lookalike_thumbnails "
                  "t ON t.collection_id = i.collection_id AND t.item = i.internal_id "
                  "WHERE i.collection_id = $1 AND i.external_id = $2",
                  PgParams().Int64(id_).Text(id)));
  if (r.rows() == 0) return std::optional<std::string>();
  if (PQgetisnull(r.get(), 0, 0)) return std::optional<std::string>(std::string());
  return std::optional<std::string>(std::string(r.Bytes(0, 0), r.Length(0, 0)));
}

StatusOr<std::vector<int64_t>> PostgresStorage::ResolveIds(const std::vector<std::string>& ids) {
  std::vector<int64_t> out;
  if (ids.empty()) return out;
  ASSIGN_OR_RETURN(auto conn, db_->Borrow());
  ASSIGN_OR_RETURN(PgResult r,
                   conn->Query("SELECT external_id, internal_id FROM lookalike_items "
                               "WHERE collection_id = $1 AND external_id = ANY($2::text[])",
                               PgParams().Int64(id_).TextArray(Distinct(ids))));
  std::unordered_map<std::string, int64_t> by_id;
  for (int i = 0; i < r.rows(); ++i) by_id[r.Text(i, 0)] = r.Int64(i, 1);
  for (const auto& id : ids) {
    auto it = by_id.find(id);
    if (it != by_id.end()) out.push_back(it->second);
  }
  return out;
}

StatusOr<std::vector<int64_t>> PostgresStorage::MatchFilter(const Filter& filter) {
  ASSIGN_OR_RETURN(auto conn, db_->Borrow());
  std::vector<int64_t> result;
  auto body = [&]() -> Status {
    auto match_key = [&](const std::string& key,
                         const std::vector<std::string>& values) -> StatusOr<std::vector<int64_t>> {
      ASSIGN_OR_RETURN(PgResult r, conn->Query("SELECT DISTINCT item FROM lookalike_metadata "
                                               "WHERE collection_id = $1 AND key = $2 "
                                               "AND value = ANY($3::text[])",
                                               PgParams().Int64(id_).Text(key).TextArray(values)));
      std::vector<int64_t> matches;
      matches.reserve(r.rows());
      for (int i = 0; i < r.rows(); ++i) matches.push_back(r.Int64(i, 0));
      return matches;
    };
    ASSIGN_OR_RETURN(result, MatchEveryKey(filter, match_key));
    return Status::Ok();
  };
  RETURN_IF_ERROR(conn->InTransaction(Txn::kRead, body));
  return result;
}

StatusOr<std::vector<std::optional<Storage::Description>>> PostgresStorage::Describe(
    const std::vector<int64_t>& internal_ids) {
  ASSIGN_OR_RETURN(auto conn, db_->Borrow());
  std::vector<std::optional<Description>> out;
  auto body = [&]() -> Status {
    out.assign(internal_ids.size(), std::nullopt);
    ASSIGN_OR_RETURN(PgResult r,
                     conn->Query("SELECT internal_id, external_id FROM lookalike_items "
                                 "WHERE collection_id = $1 AND internal_id = ANY($2::int8[])",
                                 PgParams().Int64(id_).Int64Array(internal_ids)));
    std::unordered_map<int64_t, std::string> external;
    std::vector<int64_t> found;
    for (int i = 0; i < r.rows(); ++i) {
      external[r.Int64(i, 0)] = r.Text(i, 1);
      found.push_back(r.Int64(i, 0));
    }
    ASSIGN_OR_RETURN(auto metadata, ReadMetadata(*conn, id_, found));
    for (size_t k = 0; k < internal_ids.size(); ++k) {
      auto it = external.find(internal_ids[k]);
      if (it == external.end()) continue;
      Description d;
      d.internal_id = internal_ids[k];
      d.id = it->second;
      auto m = metadata.find(internal_ids[k]);
      if (m != metadata.end()) d.metadata = m->second;
      out[k] = std::move(d);
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(conn->InTransaction(Txn::kRead, body));
  return out;
}

Status PostgresStorage::ReadVectors(const std::vector<int64_t>& internal_ids,
                                    std::vector<int64_t>* found, std::vector<float>* vectors) {
  found->clear();
  vectors->clear();
  if (internal_ids.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(auto conn, db_->Borrow());
  ASSIGN_OR_RETURN(PgResult r,
                   conn->Query("SELECT internal_id, vector FROM lookalike_items "
                               "WHERE collection_id = $1 AND internal_id = ANY($2::int8[])",
                               PgParams().Int64(id_).Int64Array(internal_ids)));
  std::unordered_map<int64_t, int> row_of;
  for (int i = 0; i < r.rows(); ++i) {
    RETURN_IF_ERROR(CheckVector(r.Length(i, 1)));
    row_of[r.Int64(i, 0)] = i;
  }
  for (int64_t internal_id : internal_ids) {
    auto it = row_of.find(internal_id);
    if (it == row_of.end()) continue;
    const auto* v = reinterpret_cast<const float*>(r.Bytes(it->second, 1));
    const size_t at = vectors->size();
    vectors->resize(at + spec_.dim);
    std::memcpy(vectors->data() + at, v, spec_.dim * sizeof(float));
    found->push_back(internal_id);
  }
  return Status::Ok();
}

Status PostgresStorage::ScanItems(int64_t after_seq,
                                  const std::function<Status(int64_t, const float*)>& fn) {
  ASSIGN_OR_RETURN(auto conn, db_->Borrow());
  auto body = [&]() -> Status {
    // Integers only in the text: nothing to escape. A tail (after_seq > 0)
    // is read through the seq index: ordered by internal id alone, a cursor
    // is planned for its first rows and walks the primary key through the
    // whole collection, filtering on seq (seconds per replay at 10^4 items).
    // Ordering by (seq, internal_id) is the same order, because NextSeq
    // hands out sequence numbers and internal ids together, both increasing.
    RETURN_IF_ERROR(
        conn->Execute("DECLARE lookalike_scan NO SCROLL CURSOR FOR SELECT internal_id, vector "
                      "FROM lookalike_items WHERE collection_id = " +
                      std::to_string(id_) + " AND seq > " + std::to_string(after_seq) +
                      (after_seq > 0 ? " ORDER BY seq, internal_id" : " ORDER BY internal_id")));
    const std::string fetch = "FETCH " + std::to_string(kScanBatchRows) + " FROM lookalike_scan";
    std::vector<float> vector(spec_.dim);
    for (;;) {
      ASSIGN_OR_RETURN(PgResult r, conn->Query(fetch));
      for (int i = 0; i < r.rows(); ++i) {
        RETURN_IF_ERROR(CheckVector(r.Length(i, 1)));
        // Copied: the bytes in a result are not aligned for floats.
        std::memcpy(vector.data(), r.Bytes(i, 1), spec_.dim * sizeof(float));
        RETURN_IF_ERROR(fn(r.Int64(i, 0), vector.data()));
      }
      if (r.rows() < kScanBatchRows) break;
    }
    return Status::Ok();
  };
  return conn->InTransaction(Txn::kRead, body);
}

StatusOr<std::vector<int64_t>> PostgresStorage::TombstonesAfter(int64_t after_seq) {
  ASSIGN_OR_RETURN(auto conn, db_->Borrow());
  ASSIGN_OR_RETURN(PgResult r,
                   conn->Query("SELECT internal_id FROM lookalike_tombstones "
                               "WHERE collection_id = $1 AND seq > $2 ORDER BY internal_id",
                               PgParams().Int64(id_).Int64(after_seq)));
  std::vector<int64_t> out;
  out.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.Int64(i, 0));
  return out;
}

StatusOr<int64_t> PostgresStorage::ReadCounter(const char* column) {
  ASSIGN_OR_RETURN(auto conn, db_->Borrow());
  ASSIGN_OR_RETURN(PgResult r, conn->Query(std::string("SELECT ") + column +
                                               " FROM lookalike_collections WHERE id = $1",
                                           PgParams().Int64(id_)));
  if (r.rows() == 0) return NotFoundError(location_ + " was dropped");
  return r.Int64(0, 0);
}

StatusOr<int64_t> PostgresStorage::LastSeq() { return ReadCounter("last_seq"); }

StatusOr<int64_t> PostgresStorage::PrunedThrough() { return ReadCounter("pruned_through"); }

StatusOr<Storage::Position> PostgresStorage::LastPosition() {
  ASSIGN_OR_RETURN(auto conn, db_->Borrow());
  ASSIGN_OR_RETURN(PgResult r, conn->Query("SELECT last_seq, last_internal_id "
                                           "FROM lookalike_collections WHERE id = $1",
                                           PgParams().Int64(id_)));
  if (r.rows() == 0) return NotFoundError(location_ + " was dropped");
  return Position{r.Int64(0, 0), r.Int64(0, 1)};
}

Status PostgresStorage::PruneTombstones(int64_t through_seq) {
  ASSIGN_OR_RETURN(auto conn, db_->Borrow());
  return conn->InTransaction(Txn::kWrite, [&]() -> Status {
    // This server's snapshot now covers through_seq: record it, then prune
    // only what every replica seen recently has covered too (a replica's own
    // row is the only one it writes, so this takes no lock a writer holds).
    RETURN_IF_ERROR(conn->Query("INSERT INTO lookalike_replicas(collection_id, replica, "
                                "snapshot_seq, updated_at) VALUES($1, $2, $3, now()) "
                                "ON CONFLICT (collection_id, replica) DO UPDATE "
                                "SET snapshot_seq = EXCLUDED.snapshot_seq, updated_at = now()",
                                PgParams().Int64(id_).Text(db_->replica()).Int64(through_seq))
                        .status());
    ASSIGN_OR_RETURN(PgResult oldest,
                     conn->Query("SELECT min(snapshot_seq) FROM lookalike_replicas "
                                 "WHERE collection_id = $1 AND updated_at > now() - "
                                 "make_interval(secs => $2)",
                                 PgParams().Int64(id_).Int64(kReplicaRetentionSeconds)));
    const int64_t prune_to = std::min(through_seq, oldest.Int64(0, 0));
    // The catalog row next, as every writer does: no lock-order inversion.
    ASSIGN_OR_RETURN(PgResult r, conn->Query("UPDATE lookalike_collections SET pruned_through = $2 "
                                             "WHERE id = $1 AND pruned_through < $2 RETURNING id",
                                             PgParams().Int64(id_).Int64(prune_to)));
    if (r.rows() == 0) return Status::Ok();
    return conn
        ->Query("DELETE FROM lookalike_tombstones WHERE collection_id = $1 AND seq <= $2",
                PgParams().Int64(id_).Int64(prune_to))
        .status();
  });
}

StatusOr<int64_t> PostgresStorage::Count() {
  ASSIGN_OR_RETURN(auto conn, db_->Borrow());
  ASSIGN_OR_RETURN(PgResult r,
                   conn->Query("SELECT count(*) FROM lookalike_items WHERE collection_id = $1",
                               PgParams().Int64(id_)));
  return r.Int64(0, 0);
}

}  // namespace lookalike
