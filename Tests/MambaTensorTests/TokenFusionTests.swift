import XCTest
@testable import MambaTensor

/// The test cases of spec/famba-v.md §10 for the operator.
final class TokenFusionTests: XCTestCase {
    func tensor(_ rows: [[Float]]) throws -> Tensor { try Tensor(shape: [1, rows.count, rows[0].count], values: rows.flatMap { $0 }) }
    func rows(_ t: Tensor) -> [[Float]] {
        let (T, C) = (t.shape[1], t.shape[2])
        return (0..<T).map { i in (0..<C).map { t.data[i * C + $0] } }
    }
    func positions(_ plan: FusionPlan, b: Int = 0) throws -> [Float] {
        let p = try Tensor(shape: [1, plan.tokensIn, 1], values: (0..<plan.tokensIn).map(Float.init))
        return try mergeTokens(p, plan: plan, tape: nil).array
    }

    let example1: [[Float]] = [[1, 0], [1, 0], [0, 1], [0, 1], [1, 1], [1, 0.9], [-1, 0.2]]

    func testWorkedExample1() throws {
        let x = try tensor(example1)
        let plan = try bipartiteSoftMatching(x, r: 2, protected: [0])
        XCTAssertEqual(rows(try mergeTokens(x, plan: plan, tape: nil)), [[1, 0], [-1, 0.2], [1, 0], [0, 1], [1, 0.95]])
        XCTAssertEqual(try positions(plan), [0, 6, 1, 2.5, 4.5])
        XCTAssertEqual(plan.protectedIndex, [0])          // the class token stays first
    }

    func testWorkedExample2ManyToOneUnweightedMean() throws {
        let y = try tensor([[5, 5], [0, 1], [0.1, 1], [-1, -1], [0.05, 1], [1, -1], [-1, 1]])
        let plan = try bipartiteSoftMatching(y, r: 2, protected: [0])
        let out = rows(try mergeTokens(y, plan: plan, tape: nil))
        XCTAssertEqual(out.count, 5)
        XCTAssertEqual(out[0], [5, 5]); XCTAssertEqual(out[1], [-1, 1]); XCTAssertEqual(out[3], [-1, -1]); XCTAssertEqual(out[4], [1, -1])
        XCTAssertEqual(out[2][0], 0.05, accuracy: 1e-6); XCTAssertEqual(out[2][1], 1, accuracy: 1e-6)
        let pos = try positions(plan)
        XCTAssertEqual(pos[2], 7.0 / 3, accuracy: 1e-6)
        // No size tracking: merging the 3-token average again with one fresh token is a plain mean.
        let again = try tensor([[9, 9], [0.05, 1], [0.05, 1.01]])
        let second = try bipartiteSoftMatching(again, r: 1, protected: nil)
        XCTAssertEqual(rows(try mergeTokens(again, plan: second, tape: nil))[1][1], (1 + 1.01) / 2, accuracy: 1e-6)
    }

    func testCapsAndIdentity() throws {
        let x = try tensor(example1)
        XCTAssertEqual(try bipartiteSoftMatching(x, r: 10, protected: [0]).tokensOut, 4)
        XCTAssertEqual(try bipartiteSoftMatching(Tensor(shape: [1, 197, 3], repeating: 1), r: 200, protected: [0]).tokensOut, 99)
        for r in [0, -3] { XCTAssertTrue(try mergeTokens(x, plan: try bipartiteSoftMatching(x, r: r, protected: [0]), tape: nil) === x) }
        let two = try tensor([[1, 0], [1, 0]])
        XCTAssertEqual(try bipartiteSoftMatching(two, r: 1, protected: [0]).tokensOut, 2)
    }

    func testProtectedTokenIsBitIdenticalAndSameIndicesForResidual() throws {
        var rng = SeededGenerator(seed: 2)
        let (T, C) = (11, 4)
        let h = try Tensor(shape: [2, T, C], values: (0..<(2 * T * C)).map { _ in Float(rng.normal()) })
        let residual = try Tensor(shape: h.shape, values: h.array.map { $0 * 3 + 0.5 })
        for p in [0, 4, 5] {   // first, an even middle position, an odd one
            let plan = try bipartiteSoftMatching(h, r: 4, protected: [p, p])
            let mh = try mergeTokens(h, plan: plan, tape: nil), mr = try mergeTokens(residual, plan: plan, tape: nil)
            for b in 0..<2 {
                let q = plan.protectedIndex![b]
                XCTAssertEqual(Array(mh.buffer[((b * 7 + q) * C)..<((b * 7 + q + 1) * C)]), Array(h.buffer[((b * T + p) * C)..<((b * T + p + 1) * C)]))
            }
            for i in 0..<mh.count { XCTAssertEqual(mr.data[i], mh.data[i] * 3 + 0.5, accuracy: 1e-5) }
            if p % 2 == 1 { XCTAssertEqual(plan.protectedIndex![0], (6 - 4) + (p - 1) / 2) }
        }
    }

    func testCosineInvarianceAndPerSampleIndependence() throws {
        var rng = SeededGenerator(seed: 8)
        let (T, C) = (9, 3)
        let a = (0..<(T * C)).map { _ in Float(rng.normal()) }, b = (0..<(T * C)).map { _ in Float(rng.normal()) }
        let both = try bipartiteSoftMatching(Tensor(shape: [2, T, C], values: a + b), r: 3, protected: [0, 0])
        let alone = try bipartiteSoftMatching(Tensor(shape: [1, T, C], values: b), r: 3, protected: [0])
        XCTAssertEqual(both.destination[1], alone.destination[0])
        var scaled = a
        for c in 0..<C { scaled[4 * C + c] *= 7.5 }      // a positive scale of one token's metric
        XCTAssertEqual(try bipartiteSoftMatching(Tensor(shape: [1, T, C], values: scaled), r: 3, protected: [0]).destination[0], both.destination[0])
    }

    func testEqualTokensMergeFirstAndOrderOptions() throws {
        // pos 4 equals pos 1 exactly (cos 1): it is merged before anything with cos < 1.
        let x = try tensor([[9, 1], [1, 2], [0.2, 1], [3, -1], [1, 2], [-1, 0.5], [0.5, 0.4]])
        let plan = try bipartiteSoftMatching(x, r: 1, protected: [0])
        XCTAssertEqual(plan.destination[0][4], plan.destination[0][1])
        XCTAssertEqual(try positions(plan), [0, 2, 6, 2.5, 3, 5])          // [A survivors] ++ [B]
        let kept = try bipartiteSoftMatching(x, r: 1, protected: [0], preserveOrder: true)
        XCTAssertEqual(try positions(kept), [0, 2.5, 2, 3, 5, 6])          // original order kept
    }

    func testMergeBackwardByFiniteDifferences() throws {
        var rng = SeededGenerator(seed: 5)
        let (T, C) = (9, 3)
        let values = (0..<(2 * T * C)).map { _ in Float(rng.normal()) }
        let x = try Tensor(shape: [2, T, C], values: values)
        let plan = try bipartiteSoftMatching(x, r: 3, protected: [0, 0])
        let seed = (0..<(2 * 6 * C)).map { _ in Float(rng.normal()) }
        let tape = Tape()
        let y = try mergeTokens(x, plan: plan, tape: tape)
        try tape.backward(from: y, seed: seed)
        // The merge is linear: d(seed·y)/dx_i is the seed of x_i's output token divided by its count.
        for b in 0..<2 { for t in 0..<T { for c in 0..<C {
            let o = plan.destination[b][t]
            XCTAssertEqual(x.grad!.data[(b * T + t) * C + c], seed[(b * 6 + o) * C + c] / Float(plan.count[b][o]), accuracy: 1e-6)
        } } }
    }
}
