import MambaIO
import MambaNN
import MambaTensor
import XCTest

/// MambaNN's layers, state-dict loading and AdamW refuse sizes, shapes and states that do not fit.
final class LayerBadInputTests: XCTestCase {
    func expect<E: Error & Equatable, T>(_ expected: E, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? E, expected, file: file, line: line)
        }
    }

    func testLayerSizes() {
        expect(TensorError.negativeDimension(tensor: "zeros", shape: [2, -1])) { try Linear(-1, 2) }
        expect(TensorError.negativeDimension(tensor: "repeating", shape: [-4])) { try RMSNorm(-4) }
        expect(TensorError.negativeDimension(tensor: "repeating", shape: [-1])) { try LayerNorm(-1) }
        expect(TensorError.negativeDimension(tensor: "zeros", shape: [4, 1, -2])) { try DepthwiseConv1d(channels: 4, kernel: -2) }
        expect(TensorError.invalidArgument(name: "stride", value: 0, allowed: "at least 1")) {
            try Conv2d(inChannels: 3, outChannels: 8, kernel: 4, stride: 0)
        }
    }

    func testLayerInputs() throws {
        let linear = try Linear(4, 2)
        expect(TensorError.dimensionMismatch(tensor: "x", axis: 1, expected: 4, found: [3, 5])) { try linear(Tensor(zeros: [3, 5])) }
        let norm = try LayerNorm(6)
        expect(TensorError.dimensionMismatch(tensor: "x", axis: 2, expected: 6, found: [1, 2, 3])) { try norm(Tensor(zeros: [1, 2, 3])) }
        let conv = try Conv2d(inChannels: 3, outChannels: 8, kernel: 4, stride: 4)
        expect(TensorError.dimensionMismatch(tensor: "images", axis: 1, expected: 3, found: [1, 1, 8, 8])) { try conv.tokens(Tensor(zeros: [1, 1, 8, 8])) }
        expect(TensorError.invalidArgument(name: "image height", value: 2, allowed: "at least the kernel, 4")) {
            try conv.tokens(Tensor(zeros: [1, 3, 2, 8]))
        }
        expect(TensorError.rankMismatch(tensor: "images", expected: 4, found: [3, 8, 8])) { try conv.tokens(Tensor(zeros: [3, 8, 8])) }
    }

    /// A value whose floats do not fill its own shape.
    struct Liar: StateDictValue {
        var shape: [Int]
        var count: Int
        func floats() -> [Float] { [Float](repeating: 1, count: count) }
    }

    func testStateDictProblemsByName() throws {
        let linear = try Linear(3, 2)
        let good = ["weight": Liar(shape: [2, 3], count: 6), "bias": Liar(shape: [2], count: 2)]
        var dict = good
        dict["weight"] = Liar(shape: [3, 2], count: 6)
        dict.removeValue(forKey: "bias")
        dict["extra"] = Liar(shape: [1], count: 1)
        expect(StateDictError.mismatch(source: "f.pth", problems: [
            .shapeMismatch(key: "weight", expected: [2, 3], found: [3, 2]),
            .missingKey(key: "bias", expected: [2]),
            .unexpectedKey(key: "extra", found: [1]),
        ])) { try linear.load(stateDict: dict, source: "f.pth") }
        // Non-strict: missing and unexpected names are reported, a wrong shape still refused.
        expect(StateDictError.mismatch(source: "", problems: [.shapeMismatch(key: "weight", expected: [2, 3], found: [3, 2])])) {
            try linear.load(stateDict: dict, strict: false)
        }
        var short = good
        short["weight"] = Liar(shape: [2, 3], count: 4)
        expect(StateDictError.mismatch(source: "", problems: [.valueCountMismatch(key: "weight", expected: 6, found: 4)])) {
            try linear.load(stateDict: short)
        }
        XCTAssertEqual(try linear.load(stateDict: ["weight": Liar(shape: [2, 3], count: 6)], strict: false),
                       StateDictReport(missing: ["bias"], unexpected: []))
    }

    func testAdamWSettingsAndState() throws {
        let p = try Tensor(shape: [2], values: [1, 2])
        expect(TensorError.invalidArgument(name: "lr", value: -1, allowed: "finite, at least 0")) {
            try AdamW(parameters: [("p", p)], lr: -1, weightDecay: 0)
        }
        expect(TensorError.invalidArgument(name: "beta1", value: 1, allowed: "[0, 1)")) {
            try AdamW(parameters: [("p", p)], lr: 1e-3, weightDecay: 0, betas: (1, 0.999))
        }
        expect(TensorError.invalidArgument(name: "eps", value: -1, allowed: "finite, at least 0")) {
            try AdamW(parameters: [("p", p)], lr: 1e-3, weightDecay: 0, eps: -1)
        }
        let opt = try AdamW(parameters: [("p", p)], lr: 1e-3, weightDecay: 0)
        expect(StateDictError.missingOptimizerState(key: "optimizer.exp_avg_sq.p")) { try opt.restore(step: 3, m: ["p": [0, 0]], v: [:]) }
        expect(StateDictError.optimizerStateSize(key: "optimizer.exp_avg.p", expected: 2, found: 3)) {
            try opt.restore(step: 3, m: ["p": [0, 0, 0]], v: ["p": [0, 0]])
        }
        expect(TensorError.invalidArgument(name: "step", value: -1, allowed: "at least 0")) { try opt.restore(step: -1, m: [:], v: [:]) }
        XCTAssertEqual(opt.step, 0, "a refused restore changes nothing")
    }
}
