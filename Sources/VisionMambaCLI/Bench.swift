import ArgumentParser
import Foundation
import MambaNN
import MambaTensor
import VisionMambaModels
import VisionMambaTraining

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time forward passes of a model on random input (after warm-up).")

    @Option(help: "Model name or alias (vision-mamba models).") var model: String = "vim-tiny"
    @Option(help: "Images per forward pass.") var batch: Int = 8
    @Option(name: .customLong("img-size"), help: "Run at this resolution (position embedding interpolated).") var imgSize: Int?
    @Option(help: "Warm-up passes (not timed).") var warmup: Int = 1
    @Option(help: "Timed passes.") var iterations: Int = 3
    @Flag(help: "Print one JSON line.") var json = false
    @Flag(help: "Print a per-op time breakdown.") var profile = false
    @Flag(help: "Also measure OpenBLAS sgemm GFLOP/s and report speed as a fraction of that floor.") var floor = false
    @Flag(help: "Time training steps (forward, backward, AdamW) instead of forward passes.") var train = false
    @Option(name: .customLong("patch-size"), help: "Override the patch size (and stride), e.g. 4 for a CIFAR-shaped Vim at 32 px.") var patchSize: Int?
    @OptionGroup var fusionOptions: FusionOptions
    @OptionGroup var dyvmOptions: DyVMOptions
    @Option(name: .customLong("gate-rate"), help: "DyVM without trained weights: switch off this fraction's complement of the (block, direction) pairs, spread evenly, to time a given gate rate.")
    var gateRate: Double?
    @OptionGroup var threadOptions: ThreadOptions

    func validate() throws {
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
        if iterations < 1 { throw ValidationError("--iterations must be at least 1") }
        if warmup < 0 { throw ValidationError("--warmup must not be negative") }
        try validateSizes(imgSize: imgSize, patchSize: patchSize)
        if let gateRate, !(gateRate >= 0 && gateRate <= 1) { throw ValidationError("--gate-rate must be in [0, 1]") }
    }

    func run() throws {
        threadOptions.apply()
        if ModelZoo.isSegmentation(model) { return try runSegmentation() }
        if ModelZoo.isDeiT(model) { return try runDeiT() }
        var config = try ModelZoo.resolve(model)
        if let patchSize { config.patchSize = patchSize; config.stride = patchSize }
        if let imgSize, patchSize != nil { config.imgSize = imgSize }
        config.fusion = try fusionOptions.make(depth: config.depth)
        config = try dyvmOptions.apply(to: config)
        if train && config.dyvm != nil { throw ValidationError("bench --train times plain Vim and Famba-V steps; DyVM is timed in inference") }
        // At the resolution the passes run at, before the model or the input is allocated.
        var target = config
        if let imgSize, patchSize == nil { target.imgSize = imgSize }
        try target.checkFitsInMemory(batch: batch, training: train)
        let estimateMiB = Double(target.estimatedBytes(batch: batch, training: train)) / 1_048_576
        let net = try VimModel(config: config)
        net.resetParameters(seed: 0)
        if let gateRate {
            guard config.dyvm != nil else { throw ValidationError("--gate-rate is for a DyVM model") }
            // Pair k of the 2·depth (block, direction) pairs is off when ⌊(k+1)·(1−rate)⌋ steps up.
            let pairs = 2 * config.depth, off = 1 - gateRate
            for k in 0..<pairs where Int(Double(k + 1) * off) > Int(Double(k) * off) {
                guard let bias = (net.layers[k / 2].mixer as? DyVMMixer)?.blockHead.bias else { continue }
                var values = bias.array
                values[k % 2] = -5
                try bias.assign(values)
            }
        }
        if let imgSize, patchSize == nil {
            try net.setImageSize(imgSize, interpolation: .classTokenAware)
            config = net.config
        }
        var rng = SeededGenerator(seed: 1)
        let input = try Tensor(zeros: [batch, config.inChannels, config.imgSize, config.imgSize])
        try input.assign((0..<input.count).map { _ in Float(rng.normal()) })

        input.requiresGrad = false
        let labels = (0..<batch).map { $0 % config.numClasses }
        let optimizer = train ? try AdamW(parameters: net.namedParameters(), lr: 1e-4, weightDecay: 0.05) : nil
        // Under mpirun a training step also averages the gradients over the ranks.
        let world: ProcessGroup? = try train ? World.current() : nil
        func pass() throws {
            guard let optimizer else { _ = try net(input); return }
            let tape = Tape()
            let loss = try crossEntropy(net(input, tape: tape), labels: labels, tape: tape)
            for (_, p) in optimizer.parameters { p.zeroGrad() }
            try Profiler.measure("backward") { try tape.backward(from: loss) }
            world?.averageGradients(optimizer.parameters.map(\.1))
            Profiler.measure("adamw") { optimizer.update() }
        }
        let seconds = try timePasses(pass, afterWarmup: { world?.resetTimers() })
        let ranks = world?.size ?? 1
        let ips = Double(batch * ranks * iterations) / seconds
        let allreduce = (world?.allreduceSeconds ?? 0) / Double(iterations)
        let gradientCount = optimizer?.parameters.reduce(0) { $0 + $1.1.count } ?? 0
        let pureAllreduce = ranks > 1 ? world!.measureAllreduce(count: gradientCount) : 0
        defer { world?.finish() }
        guard world?.isLeader ?? true else { return }
        let rss = peakResidentMiB()
        let gflop = config.forwardFLOPs(directionRate: gateRate ?? 1).total / 1e9 * (train ? 3 : 1)
        let sgemm = floor ? measureSgemmGFLOPs() : nil

        if json {
            let fields: [String] = [
                "\"model\":\"\(config.name)\"", "\"mode\":\"\(train ? "train" : "forward")\"", "\"batch\":\(batch)", "\"img_size\":\(config.imgSize)",
                "\"tokens\":\(config.tokens)", "\"threads\":\(Parallel.threads)",
                "\"images_per_second\":\(String(format: "%.3f", ips))",
                "\"seconds_per_batch\":\(String(format: "%.4f", seconds / Double(iterations)))",
                "\"peak_rss_mib\":\(String(format: "%.1f", rss))", "\"estimated_peak_mib\":\(String(format: "%.1f", estimateMiB))",
                "\"gflop_per_image\":\(String(format: "%.3f", gflop))",
                "\"peak_tensor_mib\":\(String(format: "%.1f", Double(TensorMemory.peakBytes) / 1_048_576))",
                "\"token_schedule\":[\(net.config.tokenSchedule.map(String.init).joined(separator: ","))]",
                "\"ranks\":\(ranks)", "\"allreduce_seconds_per_step\":\(String(format: "%.5f", allreduce))",
                "\"allreduce_seconds_alone\":\(String(format: "%.5f", pureAllreduce))", "\"gradient_floats\":\(gradientCount)",
            ] + (sgemm.map { ["\"sgemm_gflops\":\(String(format: "%.1f", $0))",
                              "\"fraction_of_blas_floor\":\(String(format: "%.3f", ips * gflop / $0))"] } ?? [])
            print("{" + fields.joined(separator: ",") + "}")
        } else {
            print("\(config.name): \(config.imgSize) px, \(config.tokens) tokens, batch \(batch)\(ranks > 1 ? " per rank × \(ranks) ranks" : ""), \(Parallel.threads) threads")
            if ranks > 1 {
                print(String(format: "  allreduce %.1f ms per step (waiting for other ranks included); %.1f ms for %d floats with all ranks ready",
                             1000 * allreduce, 1000 * pureAllreduce, gradientCount))
            }
            print(String(format: "  %.3f images/s, %.1f ms per batch, peak RSS %.0f MiB (estimated %.0f), %.2f GFLOP per image (%.1f GFLOP/s)",
                         ips, 1000 * seconds / Double(iterations), rss, estimateMiB, gflop, ips * gflop))
            if net.config.fusion != nil {
                print("  tokens per block: \(net.config.tokenSchedule.map(String.init).joined(separator: " ")) (Σ \(net.config.tokenLayers) of \(net.config.tokens * net.config.depth))")
            }
            print(String(format: "  peak live tensors %.1f MiB", Double(TensorMemory.peakBytes) / 1_048_576))
            if let sgemm {
                print(String(format: "  sgemm %.1f GFLOP/s on %d threads: %.3f of the BLAS floor", sgemm, Parallel.threads, ips * gflop / sgemm))
            }
        }
        if profile {
            let total = Profiler.report.reduce(0) { $0 + $1.seconds }
            print("  per-op time over \(iterations) timed passes (ms per batch):")
            for op in Profiler.report {
                print(String(format: "    %-20@ %9.2f  %5.1f%%", op.name as NSString, 1000 * op.seconds / Double(iterations), 100 * op.seconds / max(seconds, 1e-12)))
            }
            print(String(format: "    %-20@ %9.2f  %5.1f%%", "other" as NSString, 1000 * (seconds - total) / Double(iterations), 100 * (seconds - total) / max(seconds, 1e-12)))
        }
    }
}

extension Bench {
    /// A segmentation model: forward passes to the decoder's logits at the crop size (as one
    /// sliding window), or with --train whole training steps (both heads, the loss, AdamW).
    func runSegmentation() throws {
        if fusionOptions.isSet || dyvmOptions.isSet || gateRate != nil || patchSize != nil || floor {
            throw ValidationError("bench of a segmentation model takes --batch, --img-size, --train, --warmup, --iterations, --json and --profile")
        }
        var config = try ModelZoo.segmentationEntry(named: model).config
        if let imgSize { config.cropSize = imgSize }
        try config.validate()
        if let deit = config.deit { try deit.checkFitsInMemory(batch: batch, training: train) }
        let net = try Segmentor(config: config)
        net.resetParameters(seed: 0)
        let size = config.backbone.imgSize
        var rng = SeededGenerator(seed: 1)
        let input = try Tensor(shape: [batch, 3, size, size], values: (0..<(batch * 3 * size * size)).map { _ in Float(rng.normal()) })
        input.requiresGrad = false
        let labels = (0..<(batch * size * size)).map { $0 % config.numClasses }
        let named = net.namedParameters()
        let optimizer = train ? try AdamW(parameters: named, lr: 1e-4, groups: LayerDecay.official.groups(named.map { ($0.0, $0.1.shape) },
                                          numLayers: config.backbone.depth, rate: 0.92, weightDecay: 0.05)) : nil
        func pass() throws {
            guard let optimizer else { _ = try net.forward(input); return }
            let tape = Tape()
            let out = try net.forward(input, training: true, auxiliary: true, tape: tape,
                                      noise: net.trainingNoise(sampleSeeds: (0..<batch).map { UInt64($0) }))
            let loss = try net.loss(out, labels: labels, height: size, width: size, tape: tape).total
            for (_, p) in named { p.zeroGrad() }
            try Profiler.measure("backward") { try tape.backward(from: loss) }
            Profiler.measure("adamw") { optimizer.update() }
        }
        let seconds = try timePasses(pass)
        let ips = Double(batch * iterations) / seconds, rss = peakResidentMiB()
        if json {
            print("{\"model\":\"\(config.name)\",\"mode\":\"\(train ? "train" : "forward")\",\"batch\":\(batch),\"img_size\":\(size),\"tokens\":\(config.tokens),"
                  + "\"threads\":\(Parallel.threads),\"images_per_second\":\(String(format: "%.3f", ips)),"
                  + "\"seconds_per_batch\":\(String(format: "%.4f", seconds / Double(iterations))),\"peak_rss_mib\":\(String(format: "%.1f", rss)),"
                  + "\"peak_tensor_mib\":\(String(format: "%.1f", Double(TensorMemory.peakBytes) / 1_048_576))}")
        } else {
            print("\(config.name): \(size) px, \(config.tokens) tokens, batch \(batch), \(Parallel.threads) threads, \(train ? "training steps" : "forward to the decoder's logits")")
            print(String(format: "  %.3f images/s, %.1f ms per batch, peak RSS %.0f MiB, peak live tensors %.1f MiB",
                         ips, 1000 * seconds / Double(iterations), rss, Double(TensorMemory.peakBytes) / 1_048_576))
        }
        if profile {
            print("  per-op time over \(iterations) timed passes (ms per batch):")
            for op in Profiler.report {
                print(String(format: "    %-20@ %9.2f  %5.1f%%", op.name as NSString, 1000 * op.seconds / Double(iterations), 100 * op.seconds / max(seconds, 1e-12)))
            }
        }
    }
}

/// OpenBLAS sgemm throughput on 1024×1024 matrices (best of five), the floor speed is judged by.
func measureSgemmGFLOPs() -> Double {
    let n = 1024
    let a = Tensor(zeroed: [n, n]), b = Tensor(zeroed: [n, n]), c = Tensor(zeroed: [n, n])
    a.fill(0.5)
    b.fill(0.25)
    var best = Double.infinity
    for _ in 0..<5 {
        let start = DispatchTime.now().uptimeNanoseconds
        c.backend.matrixProduct(MatrixProduct(a: a, b: b, c: c))
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
    }
    return 2 * Double(n * n * n) / best / 1e9
}

extension Bench {
    /// `warmup` passes, then `iterations` timed ones with the peak-tensor counter reset and the
    /// profiler on when asked: their wall-clock seconds.
    func timePasses(_ pass: () throws -> Void, afterWarmup: () -> Void = {}) throws -> Double {
        for _ in 0..<warmup { try pass() }
        afterWarmup()
        TensorMemory.resetPeak()
        Profiler.isEnabled = profile
        defer { Profiler.isEnabled = false }
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<iterations { try pass() }
        return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }
}
