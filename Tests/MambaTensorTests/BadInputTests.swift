import XCTest
@testable import MambaTensor

/// Every public entry point that takes a shape, an index or a count refuses a bad one with the
/// exact typed error, before any kernel runs.
final class BadInputTests: XCTestCase {
    func expect<T>(_ expected: TensorError, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? TensorError, expected, file: file, line: line)
        }
    }

    func tensor(_ shape: [Int]) throws -> Tensor {
        try Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { Float($0 % 7) * 0.25 - 0.5 })
    }

    func testValuesThatDoNotFillTheShape() {
        expect(.valueCountMismatch(tensor: "values", expected: 8, found: 3)) { try Tensor(shape: [2, 4], values: [1, 2, 3]) }
        expect(.valueCountMismatch(tensor: "values", expected: 1, found: 0)) { try Tensor(shape: [], values: []) }
    }

    func testNegativeDimensions() {
        expect(.negativeDimension(tensor: "values", shape: [2, -2])) { try Tensor(shape: [2, -2], values: [1, 2, 3, 4]) }
        expect(.negativeDimension(tensor: "zeros", shape: [-3])) { try Tensor(zeros: [-3]) }
        expect(.negativeDimension(tensor: "repeating", shape: [4, -1])) { try Tensor(shape: [4, -1], repeating: 1) }
    }

    func testShapesTooLargeToAllocate() {
        expect(.sizeOverflow(tensor: "zeros", shape: [1 << 40, 1 << 40])) { try Tensor(zeros: [1 << 40, 1 << 40]) }
        expect(.sizeOverflow(tensor: "zeros", shape: [1 << 62])) { try Tensor(zeros: [1 << 62]) }
    }

    func testReshapeKeepsTheCount() throws {
        let t = try tensor([2, 3])
        expect(.cannotReshape(from: [2, 3], to: [4, 2])) { try t.reshaped([4, 2]) }
        expect(.negativeDimension(tensor: "reshape", shape: [-2, -3])) { try t.reshaped([-2, -3]) }
        XCTAssertEqual(try t.reshaped([3, 2]).array, t.array)
    }

    func testRowsOutOfRange() throws {
        let t = try tensor([3, 2])
        expect(.rowsOutOfRange(tensor: "tensor", start: 1, count: 3, size: 3)) { try t.rows(1, 3) }
        expect(.rowsOutOfRange(tensor: "tensor", start: -1, count: 1, size: 3)) { try t.rows(-1, 1) }
        expect(.rowsOutOfRange(tensor: "tensor", start: 0, count: -1, size: 3)) { try t.rows(0, -1) }
        expect(.rankMismatch(tensor: "tensor", expected: 1, found: [])) { try Tensor(shape: [], values: [1]).rows(0, 1) }
        XCTAssertEqual(try t.rows(1, 2).array, Array(t.array[2...]))
    }

    func testLinearShapes() throws {
        let x = try tensor([2, 3]), w = try tensor([5, 4])
        expect(.dimensionMismatch(tensor: "x", axis: 1, expected: 4, found: [2, 3])) { try linear(x, weight: w, bias: nil, tape: nil) }
        expect(.rankMismatch(tensor: "weight", expected: 2, found: [4])) { try linear(x, weight: try tensor([4]), bias: nil, tape: nil) }
        expect(.shapeMismatch(tensor: "bias", expected: [5], found: [4])) {
            try linear(tensor([2, 4]), weight: w, bias: try tensor([4]), tape: nil)
        }
    }

    func testAddRMSNormShapes() throws {
        let x = try tensor([2, 3, 4])
        expect(.dimensionMismatch(tensor: "x", axis: 2, expected: 5, found: [2, 3, 4])) {
            try addRMSNorm(residual: nil, x, weight: try tensor([5]), eps: 1e-5, tape: nil)
        }
        expect(.shapeMismatch(tensor: "residual", expected: [2, 3, 4], found: [2, 4, 4])) {
            try addRMSNorm(residual: try tensor([2, 4, 4]), x, weight: try tensor([4]), eps: 1e-5, tape: nil)
        }
        expect(.invalidArgument(name: "eps", value: -1, allowed: "finite, at least 0")) {
            try addRMSNorm(residual: nil, x, weight: try tensor([4]), eps: -1, tape: nil)
        }
    }

    func testSelectTokenIndices() throws {
        let x = try tensor([2, 4, 3])
        expect(.indexOutOfRange(tensor: "indices", index: 4, count: 4)) { try selectToken(x, index: 4, tape: nil) }
        expect(.indexOutOfRange(tensor: "indices", index: -1, count: 4)) { try selectToken(x, indices: [0, -1], tape: nil) }
        expect(.valueCountMismatch(tensor: "indices", expected: 2, found: 3)) { try selectToken(x, indices: [0, 1, 2], tape: nil) }
        expect(.rankMismatch(tensor: "x", expected: 3, found: [8, 3])) { try selectToken(tensor([8, 3]), index: 0, tape: nil) }
    }

    func testGatherRowsIndices() throws {
        let x = try tensor([2, 5, 3])
        expect(.indexOutOfRange(tensor: "index", index: 7, count: 5)) { try gatherRows(x, index: [[0, 1], [7, 2]], tape: nil) }
        expect(.valueCountMismatch(tensor: "index row", expected: 2, found: 3)) { try gatherRows(x, index: [[0, 1], [1, 2, 3]], tape: nil) }
        expect(.valueCountMismatch(tensor: "index", expected: 2, found: 1)) { try gatherRows(x, index: [[0, 1]], tape: nil) }
        expect(.rankMismatch(tensor: "x", expected: 2, found: [4])) { try gatherRows(tensor([4]), index: [], tape: nil) }
    }

    func testElementwiseShapes() throws {
        let a = try tensor([2, 3]), b = try tensor([3, 2])
        expect(.shapeMismatch(tensor: "b", expected: [2, 3], found: [3, 2])) { try add(a, b, tape: nil) }
        expect(.shapeMismatch(tensor: "b", expected: [2, 3], found: [3, 2])) { try multiply(a, b, tape: nil) }
    }

    func testLabelsOutsideTheClasses() throws {
        let logits = try tensor([2, 3])
        expect(.labelOutOfRange(label: 3, classes: 3)) { try crossEntropy(logits, labels: [0, 3], tape: nil) }
        expect(.labelOutOfRange(label: -1, classes: 3)) { try crossEntropy(logits, labels: [-1, 0], tape: nil) }
        expect(.valueCountMismatch(tensor: "labels", expected: 2, found: 1)) { try crossEntropy(logits, labels: [0], tape: nil) }
        expect(.labelOutOfRange(label: 10, classes: 10)) { try smoothedTargets([1, 10], classes: 10, smoothing: 0.1) }
        expect(.invalidArgument(name: "classes", value: 0, allowed: "at least 1")) { try smoothedTargets([], classes: 0, smoothing: 0) }
        expect(.labelOutOfRange(label: 2, classes: 2)) { try validateLabels([0, 1, 2], classes: 2) }
    }

    func testSoftTargets() throws {
        expect(.valueCountMismatch(tensor: "targets", expected: 6, found: 3)) {
            try softTargetCrossEntropy(tensor([2, 3]), targets: [1, 0, 0], tape: nil)
        }
        expect(.emptyBatch(tensor: "logits")) { try softTargetCrossEntropy(tensor([0, 3]), targets: [], tape: nil) }
        expect(.rankMismatch(tensor: "logits", expected: 2, found: [6])) { try softTargetCrossEntropy(tensor([6]), targets: [], tape: nil) }
    }

    func testDropPathDrawsAndRate() throws {
        let x = try tensor([2, 3])
        expect(.valueCountMismatch(tensor: "uniforms", expected: 2, found: 1)) { try dropPath(x, rate: 0.5, uniforms: [0.3], tape: nil) }
        expect(.invalidArgument(name: "rate", value: 1, allowed: "[0, 1)")) { try dropPath(x, rate: 1, uniforms: [0.3, 0.4], tape: nil) }
        var rng = SeededGenerator(seed: 1)
        expect(.invalidArgument(name: "rate", value: -0.5, allowed: "[0, 1)")) { try dropPath(x, rate: -0.5, rng: &rng, tape: nil) }
    }

    func testGumbelNoiseCounts() throws {
        expect(.valueCountMismatch(tensor: "noise", expected: 12, found: 5)) {
            try gumbelSoftmaxKeep(tensor([2, 3, 2]), noise: [Float](repeating: 0, count: 5), tape: nil)
        }
        expect(.dimensionMismatch(tensor: "logp", axis: 1, expected: 2, found: [2, 3])) {
            try gumbelSoftmaxKeep(tensor([2, 3]), noise: [Float](repeating: 0, count: 6), tape: nil)
        }
        expect(.valueCountMismatch(tensor: "noise", expected: 4, found: 3)) { try gumbelSigmoid([0, 1, 2, 3], noise: [0, 0, 0], tau: 1) }
        expect(.invalidArgument(name: "tau", value: 0, allowed: "positive and finite")) { try gumbelSigmoid([0], noise: [0], tau: 0) }
    }

    func testBackwardSeedShape() throws {
        let tape = Tape()
        expect(.valueCountMismatch(tensor: "loss", expected: 1, found: 3)) { try tape.backward(from: try tensor([3])) }
        expect(.valueCountMismatch(tensor: "seed", expected: 6, found: 2)) { try tape.backward(from: try tensor([2, 3]), seed: [1, 1]) }
    }

    func testFusionIndicesAndSizes() throws {
        let metric = try tensor([1, 7, 2])
        expect(.indexOutOfRange(tensor: "protected", index: 9, count: 7)) { try bipartiteSoftMatching(metric, r: 2, protected: [9]) }
        expect(.valueCountMismatch(tensor: "protected", expected: 1, found: 2)) { try bipartiteSoftMatching(metric, r: 2, protected: [0, 0]) }
        expect(.rankMismatch(tensor: "metric", expected: 3, found: [7, 2])) { try bipartiteSoftMatching(tensor([7, 2]), r: 2, protected: nil) }
        let plan = try bipartiteSoftMatching(metric, r: 2, protected: [0])
        // Tokens to merge that the plan was not made for.
        expect(.shapeMismatch(tensor: "x", expected: [1, 7, 2], found: [1, 6, 2])) { try mergeTokens(tensor([1, 6, 2]), plan: plan, tape: nil) }
        expect(.rankMismatch(tensor: "x", expected: 3, found: [7, 2])) { try mergeTokens(tensor([7, 2]), plan: plan, tape: nil) }
    }

    /// Whatever a message quotes, it stays one bounded line.
    func testMessagesAreOneBoundedLine() {
        let name = String(repeating: "name\n", count: 10_000)
        let error = TensorError.shapeMismatch(tensor: name, expected: Array(repeating: 2, count: 1000), found: [1, 2])
        XCTAssertLessThan(error.description.count, 300)
        XCTAssertFalse(error.description.contains("\n"))
        XCTAssertEqual(describe(shape: Array(1...9)), "[1, 2, 3, 4, 5, 6, 7, 8, … (9 dimensions)]")
        XCTAssertEqual(abbreviated(list: (0..<10).map(String.init), limit: 3), "0, 1, 2 and 7 more")
    }

    /// A gamma draw of a shape that is not a positive number returns NaN instead of looping forever.
    func testGammaOfAnInvalidShape() {
        var rng = SeededGenerator(seed: 3)
        XCTAssertTrue(rng.gamma(.nan).isNaN)
        XCTAssertTrue(rng.gamma(-1).isNaN)
        XCTAssertTrue(rng.beta(.infinity, 1).isNaN)
    }
}
