import Foundation

/// Where the class token sits in the token sequence.
public enum ClassTokenPosition: String, Codable, Sendable {
    /// At index num_patches / 2 (integer division): every released Vim model.
    case middle
    /// At index 0: the Famba-V models.
    case first
}

/// The shape of a Vim model: everything `VisionMamba.__init__` takes that the released models vary.
/// Fixed flags of the released models (RMSNorm, fused add+norm with an fp32 residual, absolute
/// position embedding, bimamba v2, class token) are not options here.
public struct VimConfig: Codable, Equatable, Sendable {
    /// The model's name (`vim-tiny`, an official name, or a run's own).
    public var name: String
    /// The side of the square input in pixels.
    public var imgSize: Int
    /// The side of a patch in pixels.
    public var patchSize: Int
    /// The step between patches (the patch size, or 8 for the `+` stride-8 variants).
    public var stride: Int
    /// The width of the token stream (`embed_dim`).
    public var embedDim: Int
    /// Blocks.
    public var depth: Int
    /// Classes of the head (0: no head, the features alone).
    public var numClasses: Int
    /// The state size of each selective scan (`d_state`).
    public var dState: Int = 16
    /// The causal convolution's kernel size (`d_conv`).
    public var dConv: Int = 4
    /// The mixer's inner width as a multiple of `embedDim` (`expand`).
    public var expand: Int = 2
    /// Channels of the input image.
    public var inChannels: Int = 3
    /// Where the class token sits in the sequence (the released models: the middle).
    public var clsPosition: ClassTokenPosition = .middle
    /// `if_divide_out`: (forward + backward) / 2 before out_proj.
    public var divideOut: Bool = true
    /// Epsilon of the RMS norms.
    public var normEps: Float = 1e-5
    /// Famba-V token fusion, when on.
    public var fusion: TokenFusion? = nil
    /// DyVM token pruning and direction selection, when on.
    public var dyvm: DyVMConfig? = nil

    /// A Vim of `depth` blocks of width `embedDim` on `imgSize` images cut into `patchSize` patches every `stride` pixels, with a head of `numClasses`; the other settings keep the released models' values.
    public init(name: String, imgSize: Int, patchSize: Int, stride: Int, embedDim: Int, depth: Int,
                numClasses: Int, dState: Int = 16, dConv: Int = 4, expand: Int = 2,
                clsPosition: ClassTokenPosition = .middle) {
        self.name = name
        self.imgSize = imgSize
        self.patchSize = patchSize
        self.stride = stride
        self.embedDim = embedDim
        self.depth = depth
        self.numClasses = numClasses
        self.dState = dState
        self.dConv = dConv
        self.expand = expand
        self.clsPosition = clsPosition
    }

    // The derived sizes below never trap: a config `validate()` refuses may hold any Int, and
    // then its sizes are meaningless (0 or wrapped) rather than a crash.

    /// Grid side G = (img − p) / s + 1 (0 outside the image sizes `validate()` allows).
    public var grid: Int {
        guard stride > 0, patchSize > 0, imgSize >= patchSize, imgSize <= 65_536 else { return 0 }
        return (imgSize - patchSize) / stride + 1
    }
    /// M = G²
    public var numPatches: Int { grid * grid }
    /// T = M + 1
    public var tokens: Int { numPatches + 1 }
    /// Index of the class token in the sequence.
    public var clsIndex: Int { clsPosition == .middle ? numPatches / 2 : 0 }
    /// E = expand · D
    public var dInner: Int { expand &* embedDim }
    /// R = ceil(D / 16) (dt_rank "auto")
    public var dtRank: Int { (embedDim &+ 15) / 16 }

    /// Rejects values the model cannot be built or run with, naming the field (as the official
    /// code and the fixture JSON name it), its value and what it may be. The upper bounds are
    /// far above any released model; they keep every size computation within an Int.
    public func validate() throws {
        func check(_ ok: Bool, _ field: String, _ value: Any, _ allowed: String) throws {
            if !ok { throw ConfigError.invalidValue(model: name, field: field, value: "\(value)", allowed: allowed) }
        }
        try check((1...65_536).contains(imgSize), "img_size", imgSize, "1...65536")
        try check((1...imgSize).contains(patchSize), "patch_size", patchSize, "1...img_size (\(imgSize))")
        try check((1...imgSize).contains(stride), "stride", stride, "1...img_size (\(imgSize))")
        // The official PatchEmbed covers the whole image: no leftover rows or columns of pixels.
        try check((imgSize - patchSize) % stride == 0, "img_size", imgSize,
                  "patch_size (\(patchSize)) plus a multiple of stride (\(stride))")
        try check((1...65_536).contains(embedDim), "embed_dim", embedDim, "1...65536")
        try check((1...4096).contains(depth), "depth", depth, "1...4096")
        try check((1...16_777_216).contains(numClasses), "num_classes", numClasses, "1...16777216")
        try check((1...256).contains(dState), "d_state", dState, "1...256")
        try check((1...64).contains(dConv), "d_conv", dConv, "1...64")
        try check((1...64).contains(expand), "expand", expand, "1...64")
        try check((1...64).contains(inChannels), "channels", inChannels, "1...64")
        try check(normEps >= 0 && normEps.isFinite, "norm_epsilon", normEps, "finite, at least 0")
        if let fusion {
            try check(fusion.tokens >= 0, "fusion.tokens", fusion.tokens, "at least 0")
            if let bad = fusion.blocks.first(where: { !(0..<depth).contains($0) }) {
                try check(false, "fusion.blocks", bad, "block indices in 0..<\(depth)")
            }
            // The official code caps r at each fusion (ToMe's bipartite_soft_matching removes
            // min(r, (T − 1) / 2); spec/famba-v.md §2.2), so an r that only later fusing blocks
            // cap, as their token count shrinks, is the official behaviour and is kept. The first
            // fusing block sees all T tokens: an r above its cap is capped in every block, never
            // the r that runs, so it is refused.
            let maximum = (tokens - 1) / 2
            if !fusion.blocks.isEmpty && fusion.tokens > maximum {
                throw ConfigError.tooManyFusionTokens(model: name, requested: fusion.tokens, maximum: maximum, tokens: tokens)
            }
        }
        if let dyvm {
            if fusion != nil { throw ConfigError.incompatible(model: name, first: "DyVM pruning", second: "Famba-V fusion") }
            try check(clsPosition == .middle, "cls_token_position", clsPosition.rawValue, "middle (DyVM follows the released Vim models)")
            try dyvm.validate(depth: depth, numPatches: numPatches, model: name)
        }
    }
}

extension VimConfig {
    /// Reads the fixture JSON format (fixtures/README.md): img_size, patch_size, stride, embed_dim,
    /// depth, num_classes, d_state, d_conv, expand, optional cls_token_position ("middle"/"first").
    public static func load(json path: String) throws -> VimConfig {
        guard let data = FileManager.default.contents(atPath: path) else { throw ConfigError.unreadableFile(path: path) }
        return try parse(json: data, path: path)
    }

    /// The JSON of `load(json:)` already read; `path` names it in errors.
    static func parse(json data: Data, path: String) throws -> VimConfig {
        let file: ConfigFile
        do {
            file = try JSONDecoder().decode(ConfigFile.self, from: data)
        } catch {
            // Fields decode leniently (see ConfigFile), so only the file itself fails here: not
            // JSON, or JSON that is not an object.
            throw ConfigError.notAJSONObject(path: path)
        }
        func required(_ value: Int?, _ key: ConfigFile.CodingKeys) throws -> Int {
            guard let value else { throw ConfigError.missingField(path: path, field: key.stringValue, expected: "integer") }
            return value
        }
        var position = ClassTokenPosition.middle
        if let p = file.clsTokenPosition {
            guard let parsed = ClassTokenPosition(rawValue: p) else {
                throw ConfigError.invalidValue(model: path, field: "cls_token_position", value: p, allowed: "middle or first")
            }
            position = parsed
        }
        let name = file.name ?? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let imgSize = try required(file.imgSize, .imgSize), patchSize = try required(file.patchSize, .patchSize)
        var config = VimConfig(
            name: name, imgSize: imgSize, patchSize: patchSize, stride: file.stride ?? patchSize,
            embedDim: try required(file.embedDim, .embedDim), depth: try required(file.depth, .depth),
            numClasses: try required(file.numClasses, .numClasses), dState: file.dState ?? 16,
            dConv: file.dConv ?? 4, expand: file.expand ?? 2, clsPosition: position)
        // The sizes first: the fusion blocks below are listed per block of `depth`.
        try config.validate()
        if let f = file.fusion {
            // The fixture format: {strategy, layer, tokens} under the released code's per-block rule.
            guard let strategy = f.strategy else { throw ConfigError.missingField(path: path, field: "fusion.strategy", expected: "string") }
            guard let tokens = f.tokens else { throw ConfigError.missingField(path: path, field: "fusion.tokens", expected: "integer") }
            let rule = f.ruleName.flatMap(TokenFusion.Rule.init(rawValue:)) ?? .official
            // Explicit blocks win, and then the strategy is not read.
            let blocks = try f.blocks
                ?? TokenFusion.blocks(strategy: TokenFusion.Strategy(name: strategy), layer: f.layer ?? 0, depth: config.depth, rule: rule)
            config.fusion = TokenFusion(blocks: blocks, tokens: tokens, preserveOrder: f.order == "preserve")
        }
        if let d = file.dyvm {
            guard let loc = d.pruningLoc else {
                throw ConfigError.missingField(path: path, field: "dyvm.pruning_loc", expected: "list of integers")
            }
            guard let r = d.tokenKeepRatio else {
                throw ConfigError.missingField(path: path, field: "dyvm.token_keep_ratio", expected: "number")
            }
            var dyvm = DyVMConfig(pruningLoc: loc, tokenKeepRatio: r, blockKeepRatio: d.blockKeepRatio ?? 0.8)
            if let loss = d.loss {
                if let w = loss.tokenPruningWeight { dyvm.tokenPruningWeight = w }
                if let w = loss.blockPruningWeight { dyvm.blockPruningWeight = w }
                if let w = loss.distillWeight { dyvm.distillWeight = w }
                if let w = loss.tokenRatioDivisor { dyvm.tokenRatioDivisor = w }
            }
            if let tau = d.blockSelection?.tau { dyvm.gateTemperature = Float(tau) }
            if let threshold = d.blockSelection?.threshold { dyvm.gateThreshold = Float(threshold) }
            config.dyvm = dyvm
        }
        try config.validate()
        return config
    }
}

/// The fixture JSON format as written, key for key. Every field is optional here, and one that is
/// null or of another JSON type (a string or a fraction where an integer belongs, a number where
/// an object belongs) reads as absent, as the format has always been read: `parse` then takes the
/// field's default or reports it missing, in the order the format has always reported them.
/// Integer fields take any number with an integral value (32, 32.0, 3.2e1); number fields also
/// take integers.
private struct ConfigFile: Decodable {
    @Lenient var name: String?
    @Lenient var imgSize: Int?
    @Lenient var patchSize: Int?
    @Lenient var stride: Int?
    @Lenient var embedDim: Int?
    @Lenient var depth: Int?
    @Lenient var numClasses: Int?
    @Lenient var dState: Int?
    @Lenient var dConv: Int?
    @Lenient var expand: Int?
    @Lenient var clsTokenPosition: String?
    @Lenient var fusion: Fusion?
    @Lenient var dyvm: DyVM?

    enum CodingKeys: String, CodingKey {
        case name, imgSize = "img_size", patchSize = "patch_size", stride, embedDim = "embed_dim", depth
        case numClasses = "num_classes", dState = "d_state", dConv = "d_conv", expand
        case clsTokenPosition = "cls_token_position", fusion, dyvm
    }

    /// `fusion`: a strategy over `layer`, or explicit `blocks`; `rule_name` (paper or official,
    /// anything else official) and `order` ("preserve", or anything else the paper's order).
    struct Fusion: Decodable {
        @Lenient var strategy: String?
        @Lenient var tokens: Int?
        @Lenient var layer: Int?
        @Lenient var blocks: [Int]?
        @Lenient var ruleName: String?
        @Lenient var order: String?

        enum CodingKeys: String, CodingKey { case strategy, tokens, layer, blocks, ruleName = "rule_name", order }
    }

    /// `dyvm`, with its optional `loss` weights and `block_selection` gate settings.
    struct DyVM: Decodable {
        @Lenient var pruningLoc: [Int]?
        @Lenient var tokenKeepRatio: Double?
        @Lenient var blockKeepRatio: Double?
        @Lenient var loss: Loss?
        @Lenient var blockSelection: BlockSelection?

        enum CodingKeys: String, CodingKey {
            case pruningLoc = "pruning_loc", tokenKeepRatio = "token_keep_ratio", blockKeepRatio = "block_keep_ratio"
            case loss, blockSelection = "block_selection"
        }
    }

    struct Loss: Decodable {
        @Lenient var tokenPruningWeight: Double?
        @Lenient var blockPruningWeight: Double?
        @Lenient var distillWeight: Double?
        @Lenient var tokenRatioDivisor: Double?

        enum CodingKeys: String, CodingKey {
            case tokenPruningWeight = "token_pruning_weight", blockPruningWeight = "block_pruning_weight"
            case distillWeight = "distill_weight", tokenRatioDivisor = "token_ratio_divisor"
        }
    }

    /// Numbers read as Double and rounded to the Float the gates use.
    struct BlockSelection: Decodable {
        @Lenient var tau: Double?
        @Lenient var threshold: Double?

        enum CodingKeys: String, CodingKey { case tau, threshold }
    }
}

/// A field read leniently: nil when it is absent or null, or its value does not decode as T
/// (another JSON type, or a number T cannot hold exactly). The checks that follow treat it as
/// missing, or use its default.
@propertyWrapper
struct Lenient<T: Decodable>: Decodable {
    var wrappedValue: T?
    init(wrappedValue: T?) { self.wrappedValue = wrappedValue }
    init(from decoder: Decoder) throws { wrappedValue = try? T(from: decoder) }
}

extension KeyedDecodingContainer {
    func decode<T>(_ type: Lenient<T>.Type, forKey key: Key) throws -> Lenient<T> {
        Lenient(wrappedValue: try? decodeIfPresent(T.self, forKey: key))
    }
}
