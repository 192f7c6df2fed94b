import MambaTensor
import XCTest
@testable import VisionMambaModels

/// The peak-memory estimate: its terms on a small config, its values for the configurations it
/// was measured against, and the typed refusal before anything is allocated.
final class MemoryEstimateTests: XCTestCase {
    var savedThreads = 0
    override func setUp() { savedThreads = Parallel.threads; EngineSettings.configure(threads: 2) }
    override func tearDown() { EngineSettings.configure(threads: savedThreads) }

    static let mib = 1_048_576.0

    /// D 16, E 32, N 16, R 1 (P 33), 3 × 8 × 8 images in 4 px patches (T 5), one block.
    func testTermsOfASmallModel() throws {
        let c = VimConfig(name: "t", imgSize: 8, patchSize: 4, stride: 4, embedDim: 16, depth: 1, numClasses: 3)
        // 32 MiB, and 8 MiB for the second thread.
        let params = Double(VimModel.parameterCount(c)), base = 40 * Self.mib
        // Forward, batch 2: input 384 floats, the block's live tensors 10 rows × (4D + 5E + 2P) = 2,900.
        XCTAssertEqual(c.estimatedBytes(batch: 2, training: false), Int(base + 4 * (params + 2.25 * (384 + 2900))))
        // Written block outputs: three copies of 10 rows × D.
        XCTAssertEqual(c.estimatedBytes(batch: 2, training: false, keepsBlockOutputs: true),
                       Int(base + 4 * (params + 2.25 * (384 + 2900) + 3 * 160)))
        // Training: four copies of the parameters (five with an EMA); saved 10 × (2D + 3E + 2P + 1) = 1,950;
        // backward 10 × (D + 8E + P) = 3,050; scan partials 10 × 2N × (2 groups + 8 lanes × 2 threads) = 5,760.
        XCTAssertEqual(c.estimatedBytes(batch: 2, training: true), Int(base + 4 * (4 * params + 1.3 * (384 + 1950 + 3050 + 5760))))
        XCTAssertEqual(c.estimatedBytes(batch: 2, training: true, parameterCopies: 1),
                       Int(base + 4 * (5 * params + 1.3 * (384 + 1950 + 3050 + 5760))))
    }

    /// The values behind the comparison in MemoryEstimate.swift (peak RSS measured by bench on
    /// 2 threads in brackets).
    func testZooEstimates() throws {
        let tiny = try ModelZoo.config(named: "vim-tiny")
        XCTAssertEqual(Double(tiny.estimatedBytes(batch: 8, training: false)) / Self.mib, 115.2, accuracy: 0.1)   // [94-97]
        var cifar = tiny
        cifar.imgSize = 32; cifar.patchSize = 4; cifar.stride = 4
        XCTAssertEqual(Double(cifar.estimatedBytes(batch: 32, training: true)) / Self.mib, 591.4, accuracy: 0.1)   // [544-550]
        // Fusion lowers the saved activations with the tokens each block sees.
        cifar.fusion = TokenFusion(blocks: Array(0..<24), tokens: 2)
        XCTAssertEqual(Double(cifar.estimatedBytes(batch: 32, training: true)) / Self.mib, 436.7, accuracy: 0.1)   // [318]
    }

    /// Sizes far past any machine saturate instead of overflowing, and are refused with the estimate
    /// and the memory available, before a model exists.
    func testTooLargeIsRefused() throws {
        let tiny = try ModelZoo.config(named: "vim-tiny")
        XCTAssertEqual(tiny.estimatedBytes(batch: .max, training: true), .max)
        let estimate = tiny.estimatedBytes(batch: 8, training: false)
        XCTAssertThrowsError(try tiny.checkFitsInMemory(batch: 8, training: false, availableBytes: estimate - 1)) {
            XCTAssertEqual($0 as? ConfigError, .tooLarge(model: tiny.name, batch: 8, training: false, estimatedBytes: estimate,
                                                         availableBytes: estimate - 1))
        }
        XCTAssertNoThrow(try tiny.checkFitsInMemory(batch: 8, training: false, availableBytes: estimate))
        XCTAssertThrowsError(try tiny.checkFitsInMemory(batch: 10_000_000, training: false)) {
            guard case let .tooLarge(_, batch, training, estimated, available)? = $0 as? ConfigError else { return XCTFail("\($0)") }
            XCTAssertEqual(batch, 10_000_000); XCTAssertFalse(training)
            XCTAssertEqual(estimated, tiny.estimatedBytes(batch: 10_000_000, training: false))
            XCTAssertEqual(available, Int(clamping: ProcessInfo.processInfo.physicalMemory))
        }
        XCTAssertEqual("\(ConfigError.tooLarge(model: "t", batch: 3, training: true, estimatedBytes: 3 << 40, availableBytes: 1536 << 20))",
                       "t: a training step of 3 image(s) needs about 3.00 TiB (estimated), more than the 1.50 GiB of memory this machine has")
        // The config is validated first, and the batch must hold an image.
        var bad = tiny
        bad.patchSize = 0
        XCTAssertThrowsError(try bad.checkFitsInMemory(batch: 1, training: false)) {
            XCTAssertEqual($0 as? ConfigError, .invalidValue(model: tiny.name, field: "patch_size", value: "0", allowed: "1...img_size (224)"))
        }
        XCTAssertThrowsError(try tiny.checkFitsInMemory(batch: 0, training: false)) {
            XCTAssertEqual($0 as? ConfigError, .invalidValue(model: tiny.name, field: "batch", value: "0", allowed: "at least 1"))
        }
    }
}
