// swift-tools-version:6.0
import PackageDescription

// The kernels use SIMD8<Float> and multiply-adds. By default Swift builds for the
// architecture's baseline (SSE2 on x86-64, without FMA, where the kernels multiply, then add).
// VISION_MAMBA_TARGET_CPU=native (or a CPU name with FMA such as haswell, znver4, apple-m1)
// builds every target for that CPU instead, with fused multiply-adds: the README's build
// command sets it. A binary built so runs only on CPUs with at least the build CPU's
// instruction sets. The flag
// is never set for a package that depends on this one, so such a package resolves by version.
let targetCPU = Context.environment["VISION_MAMBA_TARGET_CPU"].flatMap { $0.isEmpty ? nil : $0 }
let fast: [SwiftSetting] = targetCPU.map {
    [.unsafeFlags(["-target-cpu", $0], .when(configuration: .release)), .define("VISION_MAMBA_FMA", .when(configuration: .release))]
} ?? []

// BLAS is Accelerate on Apple platforms and OpenBLAS elsewhere.
let openBLAS: [Platform] = [.linux, .android, .windows, .openbsd]

let package = Package(
    name: "VisionMamba",
    platforms: [.macOS(.v14)],
    products: [
        // The library: `import VisionMamba`. The layers below it are this package's own.
        .library(name: "VisionMamba", targets: ["VisionMamba"]),
        .executable(name: "vision-mamba", targets: ["vision-mamba"]),
        .executable(name: "vision-mamba-mpi", targets: ["vision-mamba-mpi"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        // System libraries are found through pkg-config (Debian and Homebrew install the .pc files).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]),
        .systemLibrary(name: "CTurboJPEG", path: "Sources/CTurboJPEG", pkgConfig: "libturbojpeg",
                       providers: [.apt(["libturbojpeg0-dev"]), .brew(["jpeg-turbo"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"]), .brew(["libpng"])]),
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi",
                       providers: [.apt(["libopenmpi-dev"]), .brew(["open-mpi"])]),
        .target(name: "MambaTensor",
                dependencies: [.target(name: "CBLAS", condition: .when(platforms: openBLAS))],
                swiftSettings: fast,
                linkerSettings: [.linkedFramework("Accelerate", .when(platforms: [.macOS, .iOS, .visionOS]))]),
        .target(name: "MambaNN", dependencies: ["MambaTensor"], swiftSettings: fast),
        .target(name: "MambaIO", dependencies: ["CTurboJPEG", "CPNG"], swiftSettings: fast),
        .target(name: "VisionMambaModels", dependencies: ["MambaNN", "MambaTensor", "MambaIO"],
                resources: [.copy("Resources/imagenet-classes.txt")], swiftSettings: fast),
        .target(name: "VisionMambaData", dependencies: ["MambaTensor", "MambaIO"],
                resources: [.copy("Resources/digits.bin"), .copy("Resources/ade20k-classes.tsv")], swiftSettings: fast),
        .target(name: "VisionMambaTraining",
                dependencies: ["VisionMambaModels", "VisionMambaData", "MambaNN", "MambaTensor", "MambaIO",
                               .product(name: "Logging", package: "swift-log")],
                swiftSettings: fast),
        // The public API: classifier, feature extractor, segmenter, trainer, runtime settings.
        // Swift 6 language mode with complete concurrency checking.
        .target(name: "VisionMamba",
                dependencies: ["VisionMambaTraining", "VisionMambaModels", "VisionMambaData", "MambaIO", "MambaTensor",
                               .product(name: "Logging", package: "swift-log")],
                swiftSettings: fast + [.swiftLanguageMode(.v6)]),
        // Data parallelism over MPI, apart so that nothing else links an MPI runtime.
        .target(name: "VisionMambaDistributed", dependencies: ["VisionMambaTraining", "CMPI"], swiftSettings: fast),
        .target(
            name: "VisionMambaCLI",
            dependencies: ["VisionMamba", "VisionMambaModels", "VisionMambaData", "VisionMambaTraining", "MambaIO", "MambaNN", "MambaTensor",
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: fast),
        .executableTarget(name: "vision-mamba", dependencies: ["VisionMambaCLI"], swiftSettings: fast),
        .executableTarget(name: "vision-mamba-mpi", dependencies: ["VisionMambaCLI", "VisionMambaDistributed"], swiftSettings: fast),
        .testTarget(name: "MambaTensorTests", dependencies: ["MambaTensor"]),
        .testTarget(name: "TrainingTests", dependencies: ["VisionMambaTraining", "VisionMambaData", "VisionMambaModels", "MambaNN", "MambaTensor", "MambaIO"],
                    exclude: ["make_cifar.py"], resources: [.copy("Resources")]),
        .testTarget(name: "MambaIOTests", dependencies: ["MambaIO"], exclude: ["make_fixtures.py"], resources: [.copy("Resources")]),
        // The public API as a user sees it: plain `import VisionMamba`, nothing else.
        .testTarget(name: "LibraryTests", dependencies: ["VisionMamba"], swiftSettings: [.swiftLanguageMode(.v6)]),
        .testTarget(name: "CLITests", dependencies: ["vision-mamba", "vision-mamba-mpi", "MambaIO"]),
        .testTarget(name: "VisionMambaTests", dependencies: ["VisionMambaModels", "MambaNN", "MambaIO", "MambaTensor"], exclude: ["make_seg_fixtures.py", "make_deit_fixtures.py"],
                    resources: [.copy("Resources")]),
    ],
    // The layers below the public API stay in Swift 5 mode: kernels hand raw buffers to worker
    // threads by design, and Swift 6's checking of every such capture would add ceremony without
    // catching real races. Their shared state is behind locks (WorkerPool, StoragePool, Profiler).
    swiftLanguageModes: [.v5]
)
