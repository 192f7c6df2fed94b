import Foundation
import MambaTensor

// Peak memory of a forward pass or a training step, estimated from the config alone, so that a
// batch or an image size the machine cannot hold is refused before the model or any batch buffer
// is allocated (an allocation that large ends the process, with no error to report).
//
// With B the batch, T tokens (t_i those block i's mixer sees), D width, E = expand·D inner width,
// N states, P = R + 2N the x_proj width, in floats:
//   forward:  the parameters, the input [B, C, H, W] and the largest block's live tensors,
//             B·T·(4D + 5E + 2P): the residual stream, the normalised tokens, the mixer output
//             and its input (4D), xz, the conv output, Δ and the scan output (5E), both x_proj
//             outputs (2P). Written block outputs add three copies of Σ B·t_i·D (the tensors,
//             the file's floats and its bytes).
//   training: the parameters four times (weights, gradients, AdamW's m and v), one more per
//             copy (EMA, DyVM's frozen teacher), the input, what each block keeps for its
//             backward, Σ B·t_i·(2D + 3E + 2P + 1) (add + RMSNorm: residual and 1/rms; mixer:
//             u, xz, y and both x_proj outputs), and the largest block backward's buffers,
//             B·T·(D + 8E + P), plus the scan backward's [B·T, 2N] partial sums per channel
//             group and lane buffers per thread.
// The live tensors so counted match the `peak_tensor_mib` that bench reports to within 1% for
// a forward pass; in training they are 2-7% above it, since gradients are only allocated as the
// backward reaches them. Process memory is more: about 25 MiB of runtime and libraries, more for
// each thread (its OpenBLAS packing buffer and heap arena, measured at up to 10 MiB a thread for
// Vim-S), and glibc's heap, which keeps freed blocks (Tensor.swift sets its thresholds so), grows
// to about twice the live activations over a forward pass (blocks of many sizes come and go) and
// to about 1.25 times them over a training step (most activations live until the backward).
// So the estimate is 32 MiB + 8 MiB per thread past the first + parameters + 2.25 × forward
// activations, or + 1.3 × training activations. Against the peak RSS `bench --json` reports
// (2 threads unless noted; the peak itself varies by up to 10% from run to run):
//   forward, 224 px                 estimate  peak RSS
//     vim-tiny, batch 1 / 8 / 32     73 / 115 / 259 MiB    57 / 94-97 / 206-215 MiB
//     vim-tiny, batch 8, 8 threads   163 MiB               90-97 MiB
//     vim-small, batch 8             223 MiB               193-217 MiB (4 threads: 239 MiB, 211-232 MiB)
//     vim-base, batch 4              491 MiB               478-488 MiB
//     vim-tiny-stride8, batch 8      217 MiB               187-200 MiB
//   forward, vim-tiny at 32 px with patch 4, batch 64: 167 MiB, 155 MiB
//   training step, vim-tiny at 32 px with patch 4, batch 8 / 32 / 64: 258 / 591 / 1036 MiB,
//     216 / 544-550 / 983 MiB; batch 32 on 8 threads: 655 MiB, 565 MiB
//   training step, vim-tiny at 224 px, batch 2: 235 MiB, 189-193 MiB
//   training step, vim-small at 32 px with patch 4, batch 8: 645 MiB, 526-540 MiB
// So on as many threads as cores it is 1-28% above the measured peak: the margin the check
// keeps. With more threads than cores the per-thread allowance is mostly unused (80% above at 8
// threads on 2 cores). Famba-V and DyVM forward passes are estimated at their full token count,
// 50% above their peak, and a fused training step (vim-tiny, 32 px, r = 2 in every block,
// batch 32: 437 MiB against 318 MiB) 37% above.

extension VimConfig {
    /// Estimated peak bytes of this process for a forward pass (`training` false) or a training
    /// step (forward, backward, AdamW) of `batch` images, from the sizes alone (see above).
    /// `keepsBlockOutputs`: every block's output is kept and written (forward, gradients).
    /// `parameterCopies`: whole copies of the parameters held besides those a step needs (an
    /// EMA). Saturates at Int.max; meaningless, but never a trap, for a config `validate()` refuses.
    package func estimatedBytes(batch: Int, training: Bool, keepsBlockOutputs: Bool = false, parameterCopies: Int = 0) -> Int {
        let B = Double(max(batch, 0)), T = Double(tokens), D = Double(embedDim), E = Double(dInner)
        let N = Double(dState), P = Double(dtRank) + 2 * N
        let input = B * Double(inChannels) * Double(imgSize) * Double(imgSize)
        // DyVM's training step runs every token through every block (pruned ones masked).
        let schedule = (training && dyvm != nil) ? Array(repeating: tokens, count: depth) : tokenSchedule
        let seen = schedule.map(Double.init)
        var parameterFloats = Double(VimModel.parameterCount(self)) * Double(1 + max(parameterCopies, 0))
        var activations: Double
        if training {
            parameterFloats += 3 * Double(VimModel.parameterCount(self))
            if dyvm != nil {
                // The dense teacher, and the masked path's x ⊙ mask and per-direction outputs.
                var dense = self
                dense.dyvm = nil
                parameterFloats += Double(VimModel.parameterCount(dense))
            }
            let perRow = 2 * D + 3 * E + 2 * P + 1 + (dyvm == nil ? 0 : 3 * E)
            let saved = seen.reduce(0) { $0 + B * $1 * perRow }
            // Scan backward: channel groups of up to four 16-channel blocks, at least 8 when E allows.
            let blocks = max(1, dInner / 16), perGroup = min(4, max(1, blocks / 8))
            let groups = Double((blocks + perGroup - 1) / perGroup)
            let scanPartials = B * T * 2 * N * (groups + 8 * Double(Parallel.threads))
            let backward = B * T * (D + 8 * E + P) + scanPartials
            activations = 1.3 * (input + saved + backward)
        } else {
            activations = 2.25 * (input + B * T * (4 * D + 5 * E + 2 * P))
        }
        if keepsBlockOutputs { activations += 3 * seen.reduce(0) { $0 + B * $1 * D } }
        let overhead = Double(32 + 8 * (max(1, Parallel.threads) - 1)) * 1_048_576
        let bytes = overhead + 4 * (parameterFloats + activations)
        return bytes < Double(Int.max) ? Int(bytes) : Int.max
    }

    /// Throws `ConfigError.tooLarge` when `estimatedBytes` exceeds `availableBytes` (the machine's
    /// physical memory), after `validate()`: call it before the model or a batch is allocated.
    package func checkFitsInMemory(batch: Int, training: Bool, keepsBlockOutputs: Bool = false, parameterCopies: Int = 0,
                                  availableBytes: Int = Int(clamping: ProcessInfo.processInfo.physicalMemory)) throws {
        try validate()
        guard batch >= 1 else { throw ConfigError.invalidValue(model: name, field: "batch", value: "\(batch)", allowed: "at least 1") }
        let estimate = estimatedBytes(batch: batch, training: training, keepsBlockOutputs: keepsBlockOutputs, parameterCopies: parameterCopies)
        guard estimate <= availableBytes else {
            throw ConfigError.tooLarge(model: name, batch: batch, training: training, estimatedBytes: estimate, availableBytes: availableBytes)
        }
    }
}

/// Bytes in binary units with three significant digits: "1.50 GiB", "512 MiB".
func describe(bytes: Int) -> String {
    var value = Double(bytes), unit = 0
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    if unit == 0 { return "\(bytes) bytes" }
    return String(format: value < 10 ? "%.2f" : value < 100 ? "%.1f" : "%.0f", value) + " " + units[unit]
}
