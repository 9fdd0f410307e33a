#include "common/device.h"

#include <gtest/gtest.h>

namespace lookalike {
namespace {

TEST(DeviceTest, ParsesEveryForm) {
  EXPECT_EQ(*ParseDevice("cpu"), (Device{DeviceKind::kCpu, 0}));
  EXPECT_EQ(*ParseDevice("cuda"), (Device{DeviceKind::kCuda, 0}));
  EXPECT_EQ(*ParseDevice("cuda:0"), (Device{DeviceKind::kCuda, 0}));
  EXPECT_EQ(*ParseDevice("cuda:7"), (Device{DeviceKind::kCuda, 7}));
  EXPECT_EQ(*ParseDevice("cuda:1023"), (Device{DeviceKind::kCuda, 1023}));
}

TEST(DeviceTest, ToStringParsesBack) {
  for (const char* text : {"cpu", "cuda:0", "cuda:12"}) {
    StatusOr<Device> d = ParseDevice(text);
    ASSERT_TRUE(d.ok()) << text;
    EXPECT_EQ(d->ToString(), text);
    EXPECT_EQ(*ParseDevice(d->ToString()), *d);
  }
  EXPECT_EQ(ParseDevice("cuda")->ToString(), "cuda:0");
}

TEST(DeviceTest, RejectsMalformedStringsNamingThem) {
  for (const char* text : {"", "gpu", "CPU", "cuda:", "cuda:-1", "cuda:x", "cuda:1024",
                           "cuda:00000", "cuda: 1", "cuda:1 ", "tpu:0"}) {
    StatusOr<Device> d = ParseDevice(text);
    ASSERT_FALSE(d.ok()) << "'" << text << "'";
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(d.status().message().find("'" + std::string(text) + "'"), std::string::npos)
        << d.status().message();
  }
}

TEST(DeviceTest, AutoIsResolvedByGpuPresence) {
  StatusOr<Device> d = ParseDevice("auto");
  ASSERT_TRUE(d.ok());
  if (CudaDeviceCount() > 0) {
    EXPECT_EQ(*d, (Device{DeviceKind::kCuda, 0}));
    EXPECT_TRUE(CudaUnavailableReason().empty());
  } else {
    EXPECT_EQ(*d, (Device{DeviceKind::kCpu, 0}));
    EXPECT_FALSE(CudaUnavailableReason().empty());
  }
}

TEST(DeviceTest, AutoCanBeRefused) {
  StatusOr<Device> d = ParseDevice("auto", AutoDevice::kReject);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(d.status().message().find("\"auto\""), std::string::npos) << d.status().message();
}

}  // namespace
}  // namespace lookalike
