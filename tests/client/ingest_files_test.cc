#include "client/cli/ingest_files.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "client/cli/progress.h"

namespace lookalike {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "lookalike_cli_test_XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path path() const { return path_; }
  fs::path Write(const std::string& rel, const std::string& content) const {
    fs::path p = path_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }

 private:
  fs::path path_;
};

TEST(HasImageExtension, KnownExtensionsAnyCase) {
  EXPECT_TRUE(HasImageExtension("a/b.jpg"));
  EXPECT_TRUE(HasImageExtension("a/b.JPEG"));
  EXPECT_TRUE(HasImageExtension("x.Png"));
  EXPECT_TRUE(HasImageExtension("x.webp"));
  EXPECT_TRUE(HasImageExtension("x.tiff"));
  EXPECT_FALSE(HasImageExtension("x.txt"));
  EXPECT_FALSE(HasImageExtension("jpg"));
  EXPECT_FALSE(HasImageExtension("x.jpg.bak"));
}

TEST(CollectImageFiles, WalksDirectoriesSkipsHiddenAndNonImages) {
  TempDir dir;
  dir.Write("b.jpg", "12345");
  dir.Write("sub/a.PNG", "1");
  dir.Write("sub/deeper/c.webp", "1");
  dir.Write("notes.txt", "1");
  dir.Write(".hidden/d.jpg", "1");
  dir.Write("sub/.e.jpg", "1");
  auto files = CollectImageFiles({dir.path().string()});
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  ASSERT_EQ(files->size(), 3u);
  EXPECT_EQ((*files)[0].id, "b.jpg");
  EXPECT_EQ((*files)[1].id, "sub/a.PNG");
  EXPECT_EQ((*files)[2].id, "sub/deeper/c.webp");
  EXPECT_EQ((*files)[0].size, 5);
  EXPECT_GT((*files)[0].mtime_ns, 0);
  EXPECT_TRUE(fs::path((*files)[0].abs_path).is_absolute());
}

TEST(CollectImageFiles, FileArgumentUsesItsNameAndAnyExtension) {
  TempDir dir;
  fs::path p = dir.Write("x/photo.dat", "abc");
  auto files = CollectImageFiles({p.string()});
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ((*files)[0].id, "photo.dat");
}

TEST(CollectImageFiles, MissingPathAndDuplicateIdsAreErrors) {
  TempDir dir;
  auto missing = CollectImageFiles({(dir.path() / "nope").string()});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);

  dir.Write("one/a.jpg", "1");
  dir.Write("two/a.jpg", "2");
  auto dup = CollectImageFiles({(dir.path() / "one").string(), (dir.path() / "two").string()});
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(dup.status().message().find("\"a.jpg\""), std::string::npos);
}

TEST(MetadataTable, CsvByIdWithQuoting) {
  TempDir dir;
  fs::path csv = dir.Write("meta.csv",
                           "id,color,title\r\n"
                           "a.jpg,red,\"Hello, \"\"world\"\"\"\r\n"
                           "sub/b.jpg,blue,\"two\nlines\"\r\n");
  auto table = MetadataTable::Load(csv.string());
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  EXPECT_EQ(table->size(), 2u);
  InputFile a;
  a.id = "a.jpg";
  const MetadataMap* m = table->Find(a);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->at("color"), "red");
  EXPECT_EQ(m->at("title"), "Hello, \"world\"");
  EXPECT_EQ(m->count("id"), 0u);
  InputFile b;
  b.id = "sub/b.jpg";
  ASSERT_NE(table->Find(b), nullptr);
  EXPECT_EQ(table->Find(b)->at("title"), "two\nlines");
  InputFile c;
  c.id = "c.jpg";
  EXPECT_EQ(table->Find(c), nullptr);
}

TEST(MetadataTable, CsvByPathKeepsPathAsMetadata) {
  TempDir dir;
  fs::path img = dir.Write("photos/cat.jpg", "x");
  fs::path csv = dir.Write("meta.csv", "path,label\nphotos/cat.jpg,cat\n");
  auto table = MetadataTable::Load(csv.string());
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  InputFile f;
  f.id = "cat.jpg";  // indexed with photos/ as the root
  f.path = img.string();
  f.abs_path = img.string();
  const MetadataMap* m = table->Find(f);  // found via the metadata file's folder
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->at("label"), "cat");
  EXPECT_EQ(m->at("path"), "photos/cat.jpg");
}

TEST(MetadataTable, JsonlStringifiesNonStrings) {
  TempDir dir;
  fs::path jl = dir.Write(
      "m.jsonl",
      "{\"id\": \"a\", \"price\": 12.5, \"tags\": [\"x\"]}\n\n{\"id\": \"b\", \"k\": \"v\"}\n");
  auto table = MetadataTable::Load(jl.string());
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  InputFile a;
  a.id = "a";
  ASSERT_NE(table->Find(a), nullptr);
  EXPECT_EQ(table->Find(a)->at("price"), "12.5");
  EXPECT_EQ(table->Find(a)->at("tags"), "[\"x\"]");
}

TEST(MetadataTable, BadFilesNameTheProblem) {
  TempDir dir;
  auto ragged = MetadataTable::Load(dir.Write("r.csv", "id,a\nx,1,2\n").string());
  ASSERT_FALSE(ragged.ok());
  EXPECT_NE(ragged.status().message().find("row 2"), std::string::npos);
  auto nokey = MetadataTable::Load(dir.Write("n.csv", "color\nred\n").string());
  ASSERT_FALSE(nokey.ok());
  EXPECT_NE(nokey.status().message().find("neither an id nor a path"), std::string::npos);
  auto badjson = MetadataTable::Load(dir.Write("b.jsonl", "{\"id\":1}\nnot json\n").string());
  ASSERT_FALSE(badjson.ok());
  EXPECT_NE(badjson.status().message().find("line 2"), std::string::npos);
  auto ext = MetadataTable::Load(dir.Write("m.txt", "id\n").string());
  ASSERT_FALSE(ext.ok());
  EXPECT_EQ(ext.status().code(), StatusCode::kInvalidArgument);
}

InputFile File(const std::string& path, int64_t size, int64_t mtime) {
  InputFile f;
  f.path = f.abs_path = path;
  f.id = fs::path(path).filename().string();
  f.size = size;
  f.mtime_ns = mtime;
  return f;
}

TEST(IngestJournal, AppendReloadAndKeyBySizeAndMtime) {
  TempDir dir;
  std::string file = (dir.path() / "j" / "journal.jsonl").string();
  InputFile a = File("/data/a.jpg", 10, 100), b = File("/data/b.jpg", 20, 200);
  {
    auto j = IngestJournal::Open(file);
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    EXPECT_FALSE((*j)->Contains("c1", a));
    ASSERT_TRUE((*j)->Append({{"c1", a.abs_path, a.size, a.mtime_ns, a.id}}).ok());
    EXPECT_TRUE((*j)->Contains("c1", a));
  }
  auto j = IngestJournal::Open(file);
  ASSERT_TRUE(j.ok());
  EXPECT_TRUE((*j)->Contains("c1", a));
  EXPECT_FALSE((*j)->Contains("c2", a));                             // other collection
  EXPECT_FALSE((*j)->Contains("c1", b));                             // other file
  EXPECT_FALSE((*j)->Contains("c1", File("/data/a.jpg", 11, 100)));  // changed size
  EXPECT_FALSE((*j)->Contains("c1", File("/data/a.jpg", 10, 101)));  // touched
  EXPECT_EQ((*j)->Count("c1"), 1u);
}

TEST(IngestJournal, TornLastLineIsIgnored) {
  TempDir dir;
  std::string file = (dir.path() / "journal.jsonl").string();
  InputFile a = File("/d/a.jpg", 1, 1);
  {
    auto j = IngestJournal::Open(file);
    ASSERT_TRUE(j.ok());
    ASSERT_TRUE((*j)->Append({{"c", a.abs_path, a.size, a.mtime_ns, a.id}}).ok());
  }
  std::ofstream(file, std::ios::app)
      << "{\"collection\":\"c\",\"path\":\"/d/b.j";  // crash mid-append
  auto j = IngestJournal::Open(file);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)->Count("c"), 1u);
  EXPECT_TRUE((*j)->Contains("c", a));
}

TEST(IngestJournal, ForgetDropsOnlyThatCollection) {
  TempDir dir;
  std::string file = (dir.path() / "journal.jsonl").string();
  InputFile a = File("/d/a.jpg", 1, 1);
  auto j = IngestJournal::Open(file);
  ASSERT_TRUE(j.ok());
  ASSERT_TRUE((*j)->Append({{"c1", a.abs_path, 1, 1, "a"}, {"c2", a.abs_path, 1, 1, "a"}}).ok());
  ASSERT_TRUE((*j)->Forget("c1").ok());
  EXPECT_FALSE((*j)->Contains("c1", a));
  EXPECT_TRUE((*j)->Contains("c2", a));
  ASSERT_TRUE((*j)->Append({{"c1", a.abs_path, 1, 1, "a"}}).ok());  // still appendable
  auto again = IngestJournal::Read(file);
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->size(), 2u);
  EXPECT_EQ((*again)[0].collection, "c2");
  EXPECT_EQ((*again)[1].collection, "c1");
}

TEST(IngestJournal, DefaultPathIsSanitizedUnderCache) {
  std::string p = IngestJournal::DefaultPath("localhost:50051", "my/coll");
  EXPECT_NE(p.find("lookalike/journal/localhost_50051__my_coll.jsonl"), std::string::npos) << p;
}

TEST(ParseVector, AcceptsListsAndNamesBadElements) {
  auto v = ParseVector(" 1, -2.5,3e-1 ");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, (std::vector<float>{1.f, -2.5f, 0.3f}));
  auto bracket = ParseVector("[0.5, 1]");
  ASSERT_TRUE(bracket.ok());
  EXPECT_EQ(bracket->size(), 2u);
  auto bad = ParseVector("1,x,3");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("element 1"), std::string::npos);
  EXPECT_FALSE(ParseVector("").ok());
  EXPECT_FALSE(ParseVector("1,,2").ok());
  auto nan = ParseVector("nan,1");  // parsed; the server rejects it with its own message
  ASSERT_TRUE(nan.ok());
}

TEST(ParseFilters, GroupsRepeatedKeys) {
  auto f = ParseFilters({"color=red", "color=blue", "size=", "a=b=c"});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->at("color"), (std::vector<std::string>{"red", "blue"}));
  EXPECT_EQ(f->at("size"), (std::vector<std::string>{""}));
  EXPECT_EQ(f->at("a"), (std::vector<std::string>{"b=c"}));
  EXPECT_FALSE(ParseFilters({"novalue"}).ok());
  EXPECT_FALSE(ParseFilters({"=x"}).ok());
}

TEST(ProgressBar, RendersCountRateAndEta) {
  ProgressBar bar(100, "img", false, nullptr);
  std::string line = bar.Render(50, 2, 10.0);
  EXPECT_NE(line.find("50/100"), std::string::npos) << line;
  EXPECT_NE(line.find(" 50%"), std::string::npos) << line;
  EXPECT_NE(line.find("5.0 img/s"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA 0:10"), std::string::npos) << line;
  EXPECT_NE(line.find("(2 failed)"), std::string::npos) << line;
  EXPECT_EQ(ProgressBar::FormatDuration(3725), "1:02:05");
  EXPECT_EQ(ProgressBar::FormatDuration(-1), "--:--");
}

}  // namespace
}  // namespace lookalike
