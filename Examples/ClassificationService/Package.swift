// swift-tools-version:6.0
import PackageDescription

// An HTTP service that classifies images with one shared ImageClassifier (see README.md).
let package = Package(
    name: "ClassificationService",
    platforms: [.macOS(.v14)],
    dependencies: [
        // VisionMamba itself, from this repository.
        // `name:` because a path dependency is otherwise known by its folder's name (`main` in this
        // checkout, anything in another clone), not by the package's.
        .package(name: "VisionMamba", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Already in the graph through Hummingbird; named for NIOThreadPool, where the model runs,
        // and NIOTooManyBytesError, a body over the limit.
        .package(url: "https://github.com/apple/swift-nio", from: "2.65.0"),
    ],
    targets: [
        // The routes, apart from `main` so that the tests build the same application.
        .target(
            name: "ClassificationServiceApp",
            dependencies: [
                .product(name: "VisionMamba", package: "VisionMamba"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .executableTarget(
            name: "ClassificationService",
            dependencies: [
                "ClassificationServiceApp",
                .product(name: "VisionMamba", package: "VisionMamba"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(
            name: "ClassificationServiceTests",
            dependencies: [
                "ClassificationServiceApp",
                .product(name: "VisionMamba", package: "VisionMamba"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]),
    ]
)
