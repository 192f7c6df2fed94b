/// Reverse-mode differentiation by a tape of backward steps.
///
/// Each differentiable op, when given a tape, records one closure that reads its output's
/// gradient and adds (`+=`) into its inputs' gradients, exactly as llm.c's backward kernels
/// do. `backward(from:)` seeds the loss gradient and runs the closures in reverse order, so
/// every consumer of a tensor has contributed to its gradient before its producer reads it.
/// The ops are coarse (linear, add + RMSNorm, the causal conv, the selective scan, ...), so a
/// Vim-T step records about a thousand closures, and each keeps only what its backward needs.
package final class Tape {
    private var steps: [() -> Void] = []

    package init() {}

    package func record(_ step: @escaping () -> Void) { steps.append(step) }

    package var count: Int { steps.count }

    /// Seeds d(loss)/d(loss) = 1 and runs every recorded step in reverse. The tape is spent.
    package func backward(from loss: Tensor) throws {
        guard loss.count == 1 else { throw TensorError.valueCountMismatch(tensor: "loss", expected: 1, found: loss.count) }
        try backward(from: loss, seed: [1])
    }

    /// Runs the steps in reverse with d(·)/d(output) = `seed` (a vector-Jacobian product).
    package func backward(from output: Tensor, seed: [Float]) throws {
        guard seed.count == output.count else {
            throw TensorError.valueCountMismatch(tensor: "seed", expected: output.count, found: seed.count)
        }
        let g = output.gradBuffer()
        let seedTensor = try Tensor(shape: output.shape, values: seed, device: output.device)
        g.backend.combine(.add, g, seedTensor, into: g, accumulate: false)
        // Each step is dropped once it has run, so the activations it saved, and the gradients of
        // tensors no later step reads, are freed during the pass instead of all at its end.
        while let step = steps.popLast() { step() }
    }
}

extension Tape {
    /// Runs `body` with this tape, so its ops record their backward steps, and marks the result
    /// to be computed again by `body` without a tape when a backward step needs its values,
    /// instead of being kept from the forward pass: the official `mamba_inner_fn` keeps neither
    /// the conv output nor Δ. `body` must give the same values every time (our ops do).
    package func recomputable(_ body: @escaping (Tape?) throws -> Tensor) throws -> Tensor {
        let t = try body(self)
        t.recipe = Recipe { try body(nil) }
        return t
    }
}

/// `tape.recomputable(body)`, or just `body(nil)` without a tape.
package func recomputable(tape: Tape?, _ body: @escaping (Tape?) throws -> Tensor) throws -> Tensor {
    guard let tape else { return try body(nil) }
    return try tape.recomputable(body)
}

/// How to compute a tensor's values again. Backward steps that hold `SavedTensor`s of it share
/// one recomputed copy, dropped when the last of them is gone.
package final class Recipe: @unchecked Sendable {
    private let compute: () throws -> Tensor
    private var users = 0
    private var cached: Tensor?

    init(_ compute: @escaping () throws -> Tensor) { self.compute = compute }

    func retain() { users += 1 }
    func release() {
        users -= 1
        if users == 0 { cached = nil }
    }

    func values() -> Tensor {
        if let cached { return cached }
        do {
            let t = try compute()
            cached = t
            return t
        } catch {
            preconditionFailure("recomputing a tensor whose forward pass succeeded failed: \(error)")
        }
    }
}

/// A tensor's values as a backward step keeps them: the tensor itself, or, for one made by
/// `Tape.recomputable`, only the way to compute it again.
package final class SavedTensor: @unchecked Sendable {
    private let tensor: Tensor?
    private let recipe: Recipe?

    package init(_ t: Tensor) {
        if let r = t.recipe {
            recipe = r
            tensor = nil
            r.retain()
        } else {
            recipe = nil
            tensor = t
        }
    }

    deinit { recipe?.release() }

    package var values: Tensor { tensor ?? recipe!.values() }
}

/// slot's gradient += values (row-major, the slot's count): for gradients computed on the host.
package func addToGradient(_ slot: GradientSlot, _ values: [Float]) {
    let g = slot.buffer()
    let t = Tensor(ownValues: values, shape: g.shape, device: g.device)
    g.backend.combine(.add, g, t, into: g, accumulate: false)
}

extension Tensor {
    /// The gradient buffer, created as zeros on first use.
    package func gradBuffer() -> Tensor { slot.buffer() }

    /// Sets the gradient to zero (keeping the buffer), as `optimizer.zero_grad(set_to_none=False)`.
    package func zeroGrad() { grad?.fill(0) }
}
