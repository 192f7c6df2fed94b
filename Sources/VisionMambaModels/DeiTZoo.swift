import Foundation

extension ModelZoo {
    /// A DeiT model under timm's name, with short aliases.
    package struct DeiTEntry: Sendable {
        package let name: String
        package let aliases: [String]
        package let config: DeiTConfig
        /// timm's released weights for this shape (Facebook's DeiT release).
        package let weightsURL: String?
    }

    /// The DeiT baselines of the Vim paper, as timm registers them. Kept apart from the Vim table:
    /// they take their own model class.
    package static let deitEntries: [DeiTEntry] = [
        DeiTEntry(name: "deit_tiny_patch16_224", aliases: ["deit-tiny", "deit-t"],
                  config: DeiTConfig(name: "deit_tiny_patch16_224", imgSize: 224, patchSize: 16, embedDim: 192, depth: 12, numHeads: 3, numClasses: 1000),
                  weightsURL: "https://dl.fbaipublicfiles.com/deit/deit_tiny_patch16_224-a1311bcf.pth"),
    ]

    /// The DeiT entry for a timm name or alias (case-insensitive, `_` or `-`).
    package static func deitEntry(named name: String) throws -> DeiTEntry {
        let alias = name.lowercased().replacingOccurrences(of: "_", with: "-")
        if let e = deitEntries.first(where: { $0.name == name || $0.aliases.contains(alias) }) { return e }
        throw ConfigError.unknownModel(name: name, valid: deitEntries.flatMap { $0.aliases.prefix(1) })
    }

    /// The DeiT backbone, with its pyramid, of a segmentation model that has one (`upernet-deit-tiny`).
    package static func deitBackbone(named name: String) throws -> DeiTBackboneConfig {
        let entry = try segmentationEntry(named: name)
        guard let deit = entry.config.deit else { throw ConfigError.unknownModel(name: name, valid: ["upernet-deit-tiny"]) }
        return DeiTBackboneConfig(name: entry.name, backbone: deit, outIndices: entry.config.outIndices)
    }

    package static func isDeiT(_ name: String) -> Bool { (try? deitEntry(named: name)) != nil }
}
