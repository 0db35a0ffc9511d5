#include "store/store.h"

namespace lwm2md::store {

std::string_view TableName(Table table) {
  switch (table) {
    case Table::kMeta: return "meta";
    case Table::kSettings: return "settings";
    case Table::kEndpoints: return "endpoints";
    case Table::kRegistrations: return "registrations";
    case Table::kObjects: return "objects";
    case Table::kLastKnown: return "last_known";
    case Table::kObservations: return "observations";
    case Table::kDtlsSessions: return "dtls_sessions";
    case Table::kCounters: return "counters";
    case Table::kInventory: return "inventory";
    case Table::kRequests: return "requests";
  }
  return "unknown";
}

void WriteBatch::Put(Table table, std::string_view key, std::string_view value) {
  operations_.push_back({Kind::kPut, table, std::string(key), std::string(value)});
  bytes_ += key.size() + value.size();
}

void WriteBatch::Delete(Table table, std::string_view key) {
  operations_.push_back({Kind::kDelete, table, std::string(key), {}});
  bytes_ += key.size();
}

void WriteBatch::DeletePrefix(Table table, std::string_view prefix) {
  operations_.push_back({Kind::kDeletePrefix, table, std::string(prefix), {}});
  bytes_ += prefix.size();
}

}  // namespace lwm2md::store
