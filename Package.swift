// swift-tools-version:6.1
import Foundation
import PackageDescription

/// Fovea: CNN image classification on CPU, on top of oneDNN.

let package = Package(
    name: "Fovea",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Fovea", targets: ["FoveaTensor", "FoveaNN", "FoveaOptim", "FoveaData", "FoveaModels", "FoveaONNX", "FoveaTrain", "FoveaServe", "FoveaDistributed"]),
        .executable(name: "fovea", targets: ["fovea"]),
        // Fovea's bridge to Open MPI (libFoveaMPI.so), opened at run time by FoveaDistributed under mpirun only: the
        // fovea binary itself does not link libmpi.
        .library(name: "FoveaMPI", type: .dynamic, targets: ["CFoveaMPI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // ONNX's protobuf (Sources/FoveaONNX/Generated, made by scripts/generate-onnx-proto.sh).
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        // fovea serve: the HTTP server (without its optional swift-configuration support), lifecycle, logs, metrics.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL",
                       providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(name: "CImageCodecs", path: "Sources/CImageCodecs",
                       providers: [.apt(["libjpeg62-turbo-dev", "libturbojpeg0-dev", "libpng-dev", "zlib1g-dev"])]),
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi", providers: [.apt(["libopenmpi-dev"])]),
        .target(name: "CFoveaMPI", dependencies: ["CMPI"]),
        // C loops for what oneDNN 2.6 does slowly (training max pooling), run on oneDNN's OpenMP threads (libgomp).
        .target(name: "CFoveaKernels", cSettings: [.unsafeFlags(["-O3"])], linkerSettings: [.linkedLibrary("gomp")]),
        .target(name: "FoveaTensor", dependencies: ["CDNNL", "CFoveaKernels"]),
        .target(name: "FoveaNN", dependencies: ["FoveaTensor"]),
        .target(name: "FoveaOptim", dependencies: ["FoveaNN"]),
        // Pure-Swift SIMD loops (image resampling) alone are built for AVX2, as DESIGN.md §2 says.
        .target(name: "FoveaDataKernels", swiftSettings: [.unsafeFlags(["-Ounchecked", "-target-cpu", "haswell"])]),
        .target(name: "FoveaData", dependencies: ["FoveaTensor", "CImageCodecs", "FoveaDataKernels"]),
        .target(name: "FoveaModels", dependencies: ["FoveaNN"]),
        .target(name: "FoveaONNX", dependencies: ["FoveaTensor", "FoveaNN",
                                                 .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        // Data-parallel training on Open MPI: Communicator, DistributedDataParallel.
        .target(name: "FoveaDistributed", dependencies: ["FoveaTensor", "FoveaNN"]),
        .target(name: "FoveaTrain", dependencies: ["FoveaTensor", "FoveaNN", "FoveaOptim", "FoveaData", "FoveaModels", "FoveaONNX",
                                                  "FoveaDistributed"]),
        .target(name: "FoveaServe", dependencies: [
            "FoveaTrain", "FoveaData", "FoveaTensor",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        .executableTarget(name: "fovea", dependencies: [
            "FoveaTrain", "FoveaServe",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "FoveaTensorTests", dependencies: ["FoveaTensor", "CFoveaKernels"]),
        .testTarget(name: "FoveaNNTests", dependencies: ["FoveaNN", "FoveaOptim"]),
        .testTarget(name: "FoveaDataTests", dependencies: ["FoveaData"], exclude: ["Fixtures"]),
        .testTarget(name: "FoveaModelsTests", dependencies: ["FoveaModels", "FoveaOptim", "FoveaTrain", "FoveaONNX"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "FoveaTrainTests", dependencies: ["FoveaTrain"]),
        .testTarget(name: "FoveaONNXTests", dependencies: ["FoveaONNX", "FoveaTrain", "FoveaModels"]),
        .testTarget(name: "FoveaDistributedTests", dependencies: ["FoveaDistributed", "FoveaTrain", "FoveaModels", "FoveaNN"]),
        .testTarget(name: "FoveaServeTests", dependencies: ["FoveaServe", "FoveaTrain", "FoveaModels", "FoveaData",
                                                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                                                           .product(name: "Logging", package: "swift-log")]),
    ],
    swiftLanguageModes: [.v5]
)

// The fuzzers (scripts/fuzz.sh) exist only in a build made with FOVEA_FUZZ=1, whose flags let libFuzzer supply main.
if ProcessInfo.processInfo.environment["FOVEA_FUZZ"] == "1" {
    package.targets.append(.executableTarget(name: "fovea-fuzz", dependencies: ["FoveaTrain", "FoveaData", "FoveaONNX"], path: "Fuzz"))
}
