/// Reverse-mode differentiation by a tape of backward steps.
///
/// Each differentiable op, when given a tape, records one closure that reads its output's
/// gradient and adds (`+=`) into its inputs' gradients, exactly as llm.c's backward kernels
/// do. `backward(from:)` seeds the loss gradient and runs the closures in reverse order, so
/// every consumer of a tensor has contributed to its gradient before its producer reads it.
/// The ops are coarse (linear, add + RMSNorm, the whole Mamba mixer, ...), so a Vim-T step
/// records a few hundred closures, and each keeps only what its backward needs.
public final class Tape {
    private var steps: [() -> Void] = []

    public init() {}

    public func record(_ step: @escaping () -> Void) { steps.append(step) }

    public var count: Int { steps.count }

    /// Seeds d(loss)/d(loss) = 1 and runs every recorded step in reverse. The tape is spent.
    public func backward(from loss: Tensor) throws {
        guard loss.count == 1 else { throw TensorError.valueCountMismatch(tensor: "loss", expected: 1, found: loss.count) }
        try backward(from: loss, seed: [1])
    }

    /// Runs the steps in reverse with d(·)/d(output) = `seed` (a vector-Jacobian product).
    public func backward(from output: Tensor, seed: [Float]) throws {
        guard seed.count == output.count else {
            throw TensorError.valueCountMismatch(tensor: "seed", expected: output.count, found: seed.count)
        }
        let g = output.gradBuffer()
        for i in 0..<seed.count { g.data[i] += seed[i] }
        // Each step is dropped once it has run, so the activations it saved, and the gradients of
        // tensors no later step reads, are freed during the pass instead of all at its end.
        while let step = steps.popLast() { step() }
    }
}

extension Tensor {
    /// The gradient buffer, created as zeros on first use.
    public func gradBuffer() -> Tensor { slot.buffer() }

    /// Sets the gradient to zero (keeping the buffer), as `optimizer.zero_grad(set_to_none=False)`.
    public func zeroGrad() { grad?.buffer.update(repeating: 0) }
}
