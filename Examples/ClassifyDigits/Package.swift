// swift-tools-version:6.0
import Foundation
import PackageDescription

// A program that uses VisionMamba as any other package would: by version, through its public
// API only. VISION_MAMBA_URL names the repository to take it from; without it, the checkout this
// example sits in, which then needs a release tag (`git tag 1.0.0`).
let checkout = URL(fileURLWithPath: Context.packageDirectory).appendingPathComponent("../..").standardized.path
let visionMamba = Context.environment["VISION_MAMBA_URL"] ?? "file://\(checkout)"

let package = Package(
    name: "ClassifyDigits",
    platforms: [.macOS(.v14)],
    dependencies: [.package(url: visionMamba, from: "1.0.0")],
    targets: [
        .executableTarget(name: "ClassifyDigits", dependencies: [.product(name: "VisionMamba", package: "VisionMamba")]),
    ]
)
