#include "lwm2m/registration.h"

#include <cstring>
#include <map>
#include <set>
#include <simdjson.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/json_writer.h"
#include "base/strings.h"

namespace lwm2md::lwm2m {
namespace {

absl::Status Corrupt(std::string_view what) {
  return absl::DataLossError(absl::StrCat("stored registration: ", base::Absl(what)));
}

}  // namespace

VersionText::VersionText(std::string_view text) {
  LWM2MD_CHECK(Fits(text));
  std::memcpy(text_, text.data(), text.size());
  size_ = static_cast<uint8_t>(text.size());
}

std::string_view CredentialsName(CredentialsKind kind) {
  switch (kind) {
    case CredentialsKind::kNone: return "none";
    case CredentialsKind::kPrimary: return "primary";
    case CredentialsKind::kAlternate: return "alternate";
  }
  return "none";
}

std::string BindingString(uint8_t bits, bool queue_mode) {
  std::string out;
  if (bits & binding::kUdp) out.push_back('U');
  if (bits & binding::kTcp) out.push_back('T');
  // The queue letter follows the IP transports it applies to (TS 1.0.2 §5.3.1.1 "UQ", "UQS").
  if (queue_mode) out.push_back('Q');
  if (bits & binding::kSms) out.push_back('S');
  if (bits & binding::kNonIp) out.push_back('N');
  return out;
}

void Registration::Apply(const RegistrationRequest& update) {
  if (update.lifetime_seconds) lifetime_seconds = *update.lifetime_seconds;
  if (update.binding) binding = *update.binding;
  if (update.queue_mode) queue_mode = *update.queue_mode;
  if (update.sms_number) sms_number = *update.sms_number;
  if (update.objects) objects = std::make_shared<const ObjectLinks>(*update.objects);
}

std::string Registration::Serialize() const {
  base::JsonWriter json;
  json.BeginObject()
      .Key("ep").String(endpoint)
      .Key("id").String(id)
      .Key("lt").Uint(lifetime_seconds)
      .Key("ver").String(version)
      .Key("b").Uint(binding)
      .Key("q").Bool(queue_mode)
      .Key("sms").String(sms_number)
      .Key("alt").String(objects->alternate_path);
  json.Key("ct").BeginArray();
  for (uint16_t format : objects->content_formats) json.Uint(format);
  json.EndArray();
  json.Key("links").BeginArray();
  for (const ObjectLink& link : objects->links) {
    json.BeginObject().Key("o").Uint(link.object_id);
    if (link.instance_id) json.Key("i").Uint(*link.instance_id);
    if (!link.version.empty()) json.Key("v").String(link.version);
    json.EndObject();
  }
  json.EndArray();
  json.Key("addr").String(address.ToString())
      .Key("l").Int(listener)
      .Key("cred").String(CredentialsName(credentials))
      .Key("reg").Int(absl::ToUnixMillis(registered_at))
      .Key("upd").Int(absl::ToUnixMillis(updated_at))
      .Key("seen").Int(absl::ToUnixMillis(last_seen))
      .EndObject();
  return json.Take();
}

absl::StatusOr<Registration> Registration::Parse(std::string_view serialized) {
  // One parser per thread: restoring a million registrations at start must not allocate a
  // parser for each.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(serialized.data(), serialized.size()).get(root) != simdjson::SUCCESS) {
    return Corrupt("not JSON");
  }
  Registration r;
  std::string_view text;
  uint64_t number = 0;
  int64_t signed_number = 0;
  bool flag = false;
  auto string_field = [&](const char* key, std::string* out) {
    if (root[key].get_string().get(text) != simdjson::SUCCESS) return false;
    out->assign(text);
    return true;
  };
  if (!string_field("ep", &r.endpoint) || r.endpoint.empty()) return Corrupt("no endpoint");
  if (!string_field("id", &r.id) || r.id.empty()) return Corrupt("no id");
  if (root["lt"].get_uint64().get(number) != simdjson::SUCCESS || number > UINT32_MAX) {
    return Corrupt("bad lifetime");
  }
  r.lifetime_seconds = static_cast<uint32_t>(number);
  if (root["ver"].get_string().get(text) != simdjson::SUCCESS) return Corrupt("no version");
  // Only a major.minor version is ever stored (ParseRegister checks lwm2m=).
  if (!VersionText::Fits(text)) return Corrupt("bad version");
  r.version = VersionText(text);
  if (root["b"].get_uint64().get(number) != simdjson::SUCCESS || number > 0xFF) {
    return Corrupt("bad binding");
  }
  r.binding = static_cast<uint8_t>(number);
  if (root["q"].get_bool().get(flag) != simdjson::SUCCESS) return Corrupt("bad queue mode");
  r.queue_mode = flag;
  if (root["sms"].get_string().get(text) == simdjson::SUCCESS) r.sms_number = text;
  ObjectLinks objects;
  if (!string_field("alt", &objects.alternate_path)) return Corrupt("no alternate path");
  simdjson::dom::array array;
  if (root["ct"].get_array().get(array) == simdjson::SUCCESS) {
    for (simdjson::dom::element format : array) {
      if (format.get_uint64().get(number) != simdjson::SUCCESS || number > 0xFFFF) {
        return Corrupt("bad content format");
      }
      objects.content_formats.push_back(static_cast<uint16_t>(number));
    }
  }
  if (root["links"].get_array().get(array) != simdjson::SUCCESS) return Corrupt("no links");
  for (simdjson::dom::element element : array) {
    ObjectLink link;
    if (element["o"].get_uint64().get(number) != simdjson::SUCCESS || number >= 0xFFFF) {
      return Corrupt("bad object link");
    }
    link.object_id = static_cast<uint16_t>(number);
    if (element["i"].get_uint64().get(number) == simdjson::SUCCESS) {
      if (number >= 0xFFFF) return Corrupt("bad object link");
      link.instance_id = static_cast<uint16_t>(number);
    }
    if (element["v"].get_string().get(text) == simdjson::SUCCESS) link.version.assign(text);
    objects.links.push_back(std::move(link));
  }
  r.objects = std::make_shared<const ObjectLinks>(std::move(objects));
  if (root["addr"].get_string().get(text) != simdjson::SUCCESS) return Corrupt("no address");
  std::optional<net::PeerAddress> address = net::PeerAddress::Parse(text);
  if (!address) return Corrupt(absl::StrCat("bad address \"", base::Absl(text), "\""));
  r.address = *address;
  if (root["l"].get_int64().get(signed_number) == simdjson::SUCCESS) {
    r.listener = static_cast<uint16_t>(signed_number);
  }
  if (root["cred"].get_string().get(text) == simdjson::SUCCESS) {
    if (text == "primary") r.credentials = CredentialsKind::kPrimary;
    else if (text == "alternate") r.credentials = CredentialsKind::kAlternate;
  }
  auto time_field = [&](const char* key, CompactTime* out) {
    if (root[key].get_int64().get(signed_number) != simdjson::SUCCESS) return false;
    *out = absl::FromUnixMillis(signed_number);
    return true;
  };
  if (!time_field("reg", &r.registered_at) || !time_field("upd", &r.updated_at)) {
    return Corrupt("no registration time");
  }
  if (!time_field("seen", &r.last_seen)) r.last_seen = r.updated_at;
  return r;
}

std::string Registration::EventPayload() const {
  // The discovery tree lists objects in id order and, under each, the instances the client
  // reported; an object without instances is an empty object (the reference's "2": {}).
  std::map<uint16_t, std::set<uint16_t>> tree;
  for (const ObjectLink& link : objects->links) {
    std::set<uint16_t>& instances = tree[link.object_id];
    if (link.instance_id) instances.insert(*link.instance_id);
  }
  base::JsonWriter json;
  json.BeginObject()
      .Key("binding").String(BindingString(binding, queue_mode))
      .Key("credentials").String(CredentialsName(credentials))
      .Key("remoteAddr").String(address.ToString())
      .Key("version").String(version);
  json.Key("discovery").BeginObject().Key("children").BeginObject();
  for (auto& [object_id, instances] : tree) {
    json.Key(absl::StrCat(object_id)).BeginObject();
    if (!instances.empty()) {
      json.Key("children").BeginObject();
      for (uint16_t instance : instances) json.Key(absl::StrCat(instance)).BeginObject().EndObject();
      json.EndObject();
    }
    json.EndObject();
  }
  json.EndObject().EndObject().EndObject();
  return json.Take();
}

}  // namespace lwm2md::lwm2m
