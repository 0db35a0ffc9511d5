#include "lwm2m/data_tree.h"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lwm2m/builtin_objects.h"
#include "lwm2m/object_registry.h"
#include "store/store.h"

namespace lwm2md::lwm2m {
namespace {

std::string Json(const Value& value) {
  std::string out;
  AppendValueJson(value, &out);
  return out;
}

TEST(DataTreeTest, ValuesAsTheReferenceShowsThem) {
  EXPECT_EQ(Json(Value::Integer(-5)), "-5");
  EXPECT_EQ(Json(Value::Unsigned(18446744073709551615u)), "18446744073709551615");
  EXPECT_EQ(Json(Value::Float(1.5)), "1.5");
  EXPECT_EQ(Json(Value::Boolean(true)), "true");
  EXPECT_EQ(Json(Value::String("a\"b")), R"("a\"b")");
  EXPECT_EQ(Json(Value::Opaque(std::string_view("\x01\x02\xff", 3))), R"("AQL/")");
  // The reference's "current_time": "2020-12-10T00:58:18Z".
  EXPECT_EQ(Json(Value::Time(1607561898)), R"("2020-12-10T00:58:18Z")");
  EXPECT_EQ(Json(Value::Link(3, 0)), R"("3:0")");
}

class LastKnownTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "last_known_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    Open();
    absl::StatusOr<std::vector<ObjectDefinition>> objects =
        LoadBuiltInObjects(LWM2MD_SOURCE_DIR "/config/objects");
    ASSERT_TRUE(objects.ok()) << objects.status();
    absl::StatusOr<std::unique_ptr<ObjectRegistry>> registry =
        ObjectRegistry::Create(*std::move(objects), nullptr);
    ASSERT_TRUE(registry.ok());
    registry_ = *std::move(registry);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Open() {
    store_.reset();
    store::Options options;
    options.path = dir_;
    options.map_size_bytes = uint64_t{16} << 20;
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  void Write(std::string_view endpoint, std::optional<Path> replaced,
             const std::vector<Record>& records, absl::Time at) {
    store::WriteBatch batch;
    WriteLastKnown(batch, endpoint, replaced, records, at);
    ASSERT_TRUE(store_->Write(std::move(batch)).ok());
  }
  std::string Read(std::string_view endpoint, LastKnownOptions options = {}) {
    absl::StatusOr<std::string> json = ReadLastKnown(*store_, endpoint, *registry_->snapshot(), options);
    EXPECT_TRUE(json.ok()) << json.status();
    return json.ok() ? *json : "";
  }

  std::string dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<ObjectRegistry> registry_;
};

TEST_F(LastKnownTest, ReferenceShapeWithTimesAndNames) {
  const absl::Time t = absl::FromUnixMillis(1764000000123);
  Write("dev", Path::Instance(3, 0),
        {Record{Path::Resource(3, 0, 0), Value::String("Tartabit"), {}},
         Record{Path::ResourceInstance(3, 0, 11, 0), Value::Integer(0), {}},
         Record{Path::Resource(3, 0, 9), Value::Integer(87), {}}},
        t);
  EXPECT_EQ(Read("dev"),
            R"({"3":{"0":{"0":"Tartabit","9":87,"11":{"0":0}}},)"
            R"("~3":{"0":{"0":"2025-11-24T16:00:00.123Z","9":"2025-11-24T16:00:00.123Z",)"
            R"("11":{"0":"2025-11-24T16:00:00.123Z"}}}})");
  EXPECT_EQ(Read("dev", {.include_update_times = false, .translate_ids = true}),
            R"({"device":{"0":{"manufacturer":"Tartabit","battery_level":87,"error_code":{"0":0}}}})");
  // Another endpoint whose name extends this one's is not mixed in.
  Write("dev2", std::nullopt, {Record{Path::Resource(3, 0, 9), Value::Integer(1), {}}}, t);
  EXPECT_NE(Read("dev").find("\"9\":87"), std::string::npos);
  EXPECT_TRUE(absl::IsNotFound(
      ReadLastKnown(*store_, "nobody", *registry_->snapshot(), {}).status()));
}

TEST_F(LastKnownTest, AnswerForAPathReplacesWhatWasBelowIt) {
  const absl::Time t = absl::FromUnixSeconds(1764000000);
  Write("dev", Path::Resource(3, 0, 11),
        {Record{Path::ResourceInstance(3, 0, 11, 0), Value::Integer(0), {}},
         Record{Path::ResourceInstance(3, 0, 11, 1), Value::Integer(5), {}}},
        t);
  Write("dev", Path::Resource(3, 0, 1), {Record{Path::Resource(3, 0, 1), Value::String("m"), {}}}, t);
  // A later read of 3/0/11 holds one instance: the other is gone; 3/0/1 (whose prefix
  // "3/0/1" is not below "3/0/11") stays.
  Write("dev", Path::Resource(3, 0, 11),
        {Record{Path::ResourceInstance(3, 0, 11, 0), Value::Integer(2), {}}}, t);
  EXPECT_EQ(Read("dev", {.include_update_times = false}), R"({"3":{"0":{"1":"m","11":{"0":2}}}})");
}

TEST_F(LastKnownTest, SenmlTimesAndRestart) {
  const absl::Time now = absl::FromUnixSeconds(1764000000);
  // RFC 8428 §4.5.3: an absolute time, and one relative to now.
  Write("dev", std::nullopt,
        {Record{Path::Resource(3303, 0, 5700), Value::Float(21.5), 1763990000.0},
         Record{Path::Resource(3, 0, 9), Value::Integer(50), -10.0}},
        now);
  Open();  // values survive a restart
  const std::string json = Read("dev");
  EXPECT_NE(json.find(R"("5700":"2025-11-24T13:13:20.000Z")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("9":"2025-11-24T15:59:50.000Z")"), std::string::npos) << json;
}

}  // namespace
}  // namespace lwm2md::lwm2m
