import MambaTensor
import XCTest
@testable import VisionMambaData

final class AugmentationTests: XCTestCase {
    func batch(_ B: Int, _ C: Int, _ H: Int, _ W: Int) throws -> Tensor {
        // Sample b is filled with b + 1 plus a tiny per-pixel ramp: every pixel says whose it is.
        try Tensor(shape: [B, C, H, W], values: (0..<(B * C * H * W)).map { Float($0 / (C * H * W) + 1) + Float($0 % (C * H * W)) * 1e-4 })
    }

    func testMixupBlendsWithTheReversedBatch() throws {
        let x = try batch(4, 2, 3, 3), original = x.copy()
        let mix = Mixup(mixupAlpha: 0.8, cutmixAlpha: 0, smoothing: 0, classes: 5)
        var rng = SeededGenerator(seed: 3)
        let (targets, lambda) = mix.apply(x, labels: [0, 1, 2, 3], rng: &rng)
        XCTAssertGreaterThan(lambda, 0); XCTAssertLessThan(lambda, 1)
        let per = 18
        for b in 0..<4 { for i in 0..<per {
            let want = Float(lambda) * original.data[b * per + i] + Float(1 - lambda) * original.data[(3 - b) * per + i]
            XCTAssertEqual(x.data[b * per + i], want, accuracy: 1e-5)
        } }
        XCTAssertEqual(Double(targets[0 * 5 + 0]), lambda, accuracy: 1e-6)      // own label
        XCTAssertEqual(Double(targets[0 * 5 + 3]), 1 - lambda, accuracy: 1e-6)  // partner's label
        for b in 0..<4 { XCTAssertEqual(targets[(b * 5)..<(b * 5 + 5)].reduce(0, +), 1, accuracy: 1e-6) }
    }

    func testCutMixPastesABoxAndCorrectsLambdaToItsArea() throws {
        var sawBox = false
        for seed in 0..<20 {
            let x = try batch(2, 1, 16, 16)
            let mix = Mixup(mixupAlpha: 0, cutmixAlpha: 1.0, smoothing: 0.1, classes: 3)
            var rng = SeededGenerator(seed: UInt64(seed))
            let (targets, lambda) = mix.apply(x, labels: [0, 2], rng: &rng)
            // Sample 0 keeps exactly a fraction λ of its own pixels.
            let own = (0..<256).filter { x.data[$0] < 1.5 }.count
            XCTAssertEqual(Double(own) / 256, lambda, accuracy: 1e-9)
            if own < 256 { sawBox = true }
            // Smoothed: on = 0.9 + 0.1/3, off = 0.1/3.
            let on = 1 - 0.1 + 0.1 / 3, off = 0.1 / 3
            XCTAssertEqual(Double(targets[0]), lambda * on + (1 - lambda) * off, accuracy: 1e-6)
            XCTAssertEqual(Double(targets[2]), lambda * off + (1 - lambda) * on, accuracy: 1e-6)
        }
        XCTAssertTrue(sawBox)
    }

    func testDropPathScalesWholeSamplesAndIsDifferentiable() throws {
        var rng = SeededGenerator(seed: 9)
        let x = try Tensor(shape: [400, 3], repeating: 1)
        let tape = Tape()
        let y = try dropPath(x, rate: 0.25, rng: &rng, tape: tape)
        var kept = 0
        for b in 0..<400 {
            let v = y.data[b * 3]
            XCTAssertTrue(v == 0 || abs(v - 1 / 0.75) < 1e-6)
            XCTAssertEqual(y.data[b * 3 + 1], v); XCTAssertEqual(y.data[b * 3 + 2], v)
            if v != 0 { kept += 1 }
        }
        XCTAssertEqual(Double(kept) / 400, 0.75, accuracy: 0.06)
        try tape.backward(from: y, seed: [Float](repeating: 1, count: 1200))
        XCTAssertEqual(x.grad!.array, y.array)   // d(sum y)/dx = the per-sample scale
        var r2 = SeededGenerator(seed: 1)
        XCTAssertTrue(try dropPath(x, rate: 0, rng: &r2, tape: nil) === x)
    }

    func testRandomErasingFillsOneBox() {
        var rng = SeededGenerator(seed: 4)
        var image = [Float](repeating: 100, count: 3 * 32 * 32)
        RandomErasing(probability: 1).apply(&image, shape: [3, 32, 32], rng: &rng)
        let erased = image.filter { $0 != 100 }.count / 3
        XCTAssertGreaterThanOrEqual(Double(erased), 0.02 * 1024 - 40)
        XCTAssertLessThanOrEqual(Double(erased), 1024.0 / 3 + 40)
    }

    func testRepeatedAugmentationOrderAndDeterminism() throws {
        let train = try DigitsDataset(split: .train)
        let loader = DataLoader(dataset: train, batchSize: 64, shuffle: true, dropLast: true,
                                transforms: [RandomCropWithPadding(padding: 1)], seed: 7, repeats: 3)
        let order = loader.order(epoch: 2)
        XCTAssertEqual(order.count, 1280)                         // 1,437 // 256 · 256
        for i in stride(from: 0, to: 1278, by: 3) { XCTAssertTrue(order[i] == order[i + 1] && order[i] == order[i + 2]) }
        XCTAssertNotEqual(order, loader.order(epoch: 3))
        let a = try loader.batch(0, epoch: 2, order: order), b = try loader.batch(0, epoch: 2, order: order)
        XCTAssertEqual(a.images.array, b.images.array)
        // The three copies of an image are augmented independently.
        let per = 3 * 8 * 8
        let copies = (0..<3).map { Array(a.images.array[($0 * per)..<(($0 + 1) * per)]) }
        XCTAssertEqual(Set(a.indices[0..<3]).count, 1)
        XCTAssertTrue(copies[0] != copies[1] || copies[1] != copies[2])
    }
}

final class RandAugmentTests: XCTestCase {
    func testConfigParsing() throws {
        let ra = try RandAugment(config: "rand-m9-mstd0.5-inc1")
        XCTAssertEqual(ra.layers, 2); XCTAssertEqual(ra.magnitude, 9); XCTAssertEqual(ra.magnitudeStd, 0.5); XCTAssertTrue(ra.increasing)
        XCTAssertEqual(try RandAugment(config: "rand-n3-m5").layers, 3)
        XCTAssertThrowsError(try RandAugment(config: "auto-m9")) {
            XCTAssertEqual($0 as? DatasetError, .invalidRandAugment(config: "auto-m9", setting: "auto"))
        }
        XCTAssertThrowsError(try RandAugment(config: "rand-q4")) {
            XCTAssertEqual($0 as? DatasetError, .invalidRandAugment(config: "rand-q4", setting: "q4"))
        }
        // Values that Int() would trap on, or that would make an empty range, are refused.
        for bad in ["nnan", "n1e300", "n-1", "minf"] {
            XCTAssertThrowsError(try RandAugment(config: "rand-" + bad), bad)
        }
    }

    /// Every value is bounded and finite; each refusal names the setting through the one error case.
    func testValuesOutsideTheirRangesAreRefused() throws {
        // (A minus sign splits the setting in two, so a negative value reaches the parser as a bare key.)
        for bad in ["m31", "mnan", "m1e400", "mstd101", "mstdinf", "mstdnan", "n2.5", "n101", "ninf",
                    "inc2", "inc0.5", "incnan", "p1.5", "pnan", "pinf", "m", "mstd"] {
            let config = "rand-m9-" + bad + "-inc1"
            XCTAssertThrowsError(try RandAugment(config: config), bad) {
                XCTAssertEqual($0 as? DatasetError, .invalidRandAugment(config: config, setting: bad), bad)
                XCTAssertTrue("\($0)".contains("m 0...30"), "\($0)")
            }
        }
        // The edges of every range are accepted; timm's magnitudes above 10 (clipped to 10 when drawn) too.
        let high = try RandAugment(config: "rand-m30-mstd100-n100-inc0-p1")
        XCTAssertEqual(high.magnitude, 30); XCTAssertEqual(high.magnitudeStd, 100); XCTAssertEqual(high.layers, 100)
        XCTAssertFalse(high.increasing); XCTAssertEqual(high.probability, 1)
        let low = try RandAugment(config: "rand-m0-mstd0-n0-inc1-p0")
        XCTAssertEqual(low.magnitude, 0); XCTAssertEqual(low.magnitudeStd, 0); XCTAssertEqual(low.layers, 0)
        XCTAssertTrue(low.increasing); XCTAssertEqual(low.probability, 0)
        XCTAssertEqual(try RandAugment(config: "rand-m12.5").magnitude, 12.5)
    }

    func testPixelOps() throws {
        let ra = try RandAugment(config: "rand-m10-inc1")
        var rng = SeededGenerator(seed: 0)
        let (H, W) = (2, 4)
        let px: [UInt8] = (0..<24).map { UInt8($0 * 10) }
        XCTAssertEqual(ra.apply(.invert, px, H: H, W: W, m: 10, rng: &rng), px.map { 255 - $0 })
        // Increasing posterize at m = 10 keeps 4 − 4 = 0 bits: all zero; at m = 0, 4 bits.
        XCTAssertEqual(ra.apply(.posterize, px, H: H, W: W, m: 10, rng: &rng), [UInt8](repeating: 0, count: 24))
        XCTAssertEqual(ra.apply(.posterize, px, H: H, W: W, m: 0, rng: &rng), px.map { $0 & 0xF0 })
        // Increasing solarize at m = 5: threshold 128.
        XCTAssertEqual(ra.apply(.solarize, px, H: H, W: W, m: 5, rng: &rng), px.map { $0 >= 128 ? 255 - $0 : $0 })
        // Autocontrast stretches each channel to 0…255.
        let ac = ra.apply(.autoContrast, px, H: H, W: W, m: 0, rng: &rng)
        XCTAssertEqual(ac[0], 0); XCTAssertEqual(ac[7], 255); XCTAssertEqual(ac[8], 0); XCTAssertEqual(ac[15], 255)
        // Brightness factor 1 ± 0.9·level is a pure scale of the pixels.
        let b = ra.apply(.brightness, px, H: H, W: W, m: 0, rng: &rng)
        XCTAssertEqual(b, px)
    }

    func testTranslationByWholePixelsShiftsAndFills() throws {
        let ra = try RandAugment(config: "rand-m9")
        let (H, W) = (3, 5)
        let px: [UInt8] = (0..<45).map { UInt8($0) }
        let out = ra.affine(px, H: H, W: W, translate: (2, 0))        // output x reads input x + 2
        for c in 0..<3 { for y in 0..<H { for x in 0..<W {
            let want: UInt8 = x + 2 < W ? px[c * 15 + y * 5 + x + 2] : [124, 116, 104][c]
            XCTAssertEqual(out[c * 15 + y * 5 + x], want)
        } } }
        XCTAssertEqual(ra.affine(px, H: H, W: W, rotate: 0), px)
    }

    func testAppliesDeterministicallyPerGenerator() throws {
        let ra = try RandAugment(config: "rand-m9-mstd0.5-inc1")
        var base = [Float](repeating: 0, count: 3 * 8 * 8)
        for i in base.indices { base[i] = Float((i * 37) % 256) / 255 }
        var a = base, b = base, c = base
        var r1 = SeededGenerator(seed: 3), r2 = SeededGenerator(seed: 3), r3 = SeededGenerator(seed: 4)
        ra.apply(&a, shape: [3, 8, 8], rng: &r1); ra.apply(&b, shape: [3, 8, 8], rng: &r2); ra.apply(&c, shape: [3, 8, 8], rng: &r3)
        XCTAssertEqual(a, b)
        XCTAssertTrue(a.allSatisfy { $0 >= 0 && $0 <= 1 })
        XCTAssertTrue(a != base || c != base)
    }
}
