import ArgumentParser
import Foundation
import MambaIO
import MambaNN
import MambaTensor
import VisionMambaModels
import VisionMambaTraining

// The DeiT paths of forward, bench and flops (`--model deit-tiny`, `--model upernet-deit-tiny`):
// the same flags, DeiT's own model class.

extension Forward {
    /// `forward --model deit-tiny --weights W (--input IO | --image IMG)`: logits and every
    /// block's output.
    func runDeiT(_ name: String) throws {
        let o = modelOptions
        if o.config != nil { throw ValidationError("give --model for a DeiT, not --config") }
        var stored: StoredTensor?
        if let input {
            let file = try SafeTensors.read(input)
            guard let tensor = file["input"] else { throw FileError.missingTensor(path: input, name: "input") }
            stored = tensor
        }
        var target = try ModelZoo.deitEntry(named: name).config
        if let size = o.imgSize { target.imgSize = size }
        try target.checkFitsInMemory(batch: max(1, stored?.shape.first ?? 1))
        let model = try DeiT(config: try ModelZoo.deitEntry(named: name).config)
        let skipped = try model.load(stateDict: try VimModel.modelTensors(o.weights), strict: !o.nonStrict, source: o.weights)
        if o.nonStrict && !skipped.isEmpty { FileHandle.standardError.write(Data("warning: \(skipped)\n".utf8)) }
        if let size = o.imgSize { try model.setImageSize(size) }
        var out = TensorFile()
        let images: Tensor
        if let stored {
            images = try Tensor(shape: stored.shape, values: stored.floats())
        } else {
            images = try loadImageBatch([image!], transform: .imagenet(size: model.config.imgSize))
            out.append("input", StoredTensor(shape: images.shape, floats: images.array))
        }
        try model.checkInput(shape: images.shape)
        var blocks: [(Int, Tensor)] = []
        let logits = try model(images) { blocks.append(($0, $1)) }
        out.append("logits", StoredTensor(shape: logits.shape, floats: logits.array))
        for (i, r) in blocks { out.append("block.\(i).out", StoredTensor(shape: r.shape, floats: r.array)) }
        try CheckpointFile.write(out, to: output)
    }
}

extension Bench {
    /// DeiT forward passes (or training steps with --train) on random input. (`upernet-deit-tiny`
    /// is a segmentor and is timed as the others are.)
    func runDeiT() throws {
        if fusionOptions.isSet || dyvmOptions.isSet || gateRate != nil || patchSize != nil || floor || profile {
            throw ValidationError("bench of a DeiT takes --batch, --img-size, --train, --warmup, --iterations and --json")
        }
        var rng = SeededGenerator(seed: 1)
        func randomImages(_ size: Int) throws -> Tensor {
            let t = try Tensor(shape: [batch, 3, size, size], values: (0..<(batch * 3 * size * size)).map { _ in Float(rng.normal()) })
            t.requiresGrad = false
            return t
        }
        let name: String, size: Int, tokens: Int, gflop: Double, pass: () throws -> Void
        var c = try ModelZoo.deitEntry(named: model).config
        var target = c
        if let imgSize { target.imgSize = imgSize }
        try target.checkFitsInMemory(batch: batch, training: train)
        let net = try DeiT(config: c)
        net.resetParameters(seed: 0)
        if let imgSize { try net.setImageSize(imgSize) }
        c = net.config
        let input = try randomImages(c.imgSize)
        let labels = (0..<batch).map { $0 % c.numClasses }
        let optimizer = train ? try AdamW(parameters: net.namedParameters(), lr: 1e-4, weightDecay: 0.05) : nil
        (name, size, tokens) = (c.name, c.imgSize, c.tokens)
        gflop = c.forwardFLOPs.total / 1e9 * (train ? 3 : 1)
        pass = {
            guard let optimizer else { _ = try net(input); return }
            let tape = Tape()
            let loss = try crossEntropy(net(input, tape: tape), labels: labels, tape: tape)
            for (_, p) in optimizer.parameters { p.zeroGrad() }
            try tape.backward(from: loss)
            optimizer.update()
        }
        let seconds = try timePasses(pass)
        let ips = Double(batch * iterations) / seconds, rss = peakResidentMiB(), tensors = Double(TensorMemory.peakBytes) / 1_048_576
        if json {
            print("{\"model\":\"\(name)\",\"mode\":\"\(train ? "train" : "forward")\",\"batch\":\(batch),\"img_size\":\(size),\"tokens\":\(tokens),"
                  + "\"threads\":\(Parallel.threads),\"images_per_second\":\(String(format: "%.3f", ips)),"
                  + "\"seconds_per_batch\":\(String(format: "%.4f", seconds / Double(iterations))),\"peak_rss_mib\":\(String(format: "%.1f", rss)),"
                  + "\"peak_tensor_mib\":\(String(format: "%.1f", tensors)),\"gflop_per_image\":\(String(format: "%.3f", gflop))}")
        } else {
            print("\(name): \(size) px, \(tokens) tokens, batch \(batch), \(Parallel.threads) threads")
            print(String(format: "  %.3f images/s, %.1f ms per batch, peak RSS %.0f MiB, peak live tensors %.1f MiB, %.2f GFLOP per image (%.1f GFLOP/s)",
                         ips, 1000 * seconds / Double(iterations), rss, tensors, gflop, ips * gflop))
        }
    }
}

extension Flops {
    /// Analytic GFLOP of a DeiT per image.
    func runDeiT() throws {
        if fusionOptions.isSet || dyvmOptions.isSet || patchSize != nil || gateRate != 1 {
            throw ValidationError("flops of a DeiT takes --img-size, --num-classes and --json")
        }
        var c = try ModelZoo.deitEntry(named: model).config
        if let imgSize { c.imgSize = imgSize }
        if let numClasses { c.numClasses = numClasses }
        try c.validate()
        let f = c.forwardFLOPs
        if json {
            print("{\"model\":\"\(c.name)\",\"img_size\":\(c.imgSize),\"tokens\":\(c.tokens),\"gflop\":\(String(format: "%.4f", f.total / 1e9)),"
                  + "\"matmul_gflop\":\(String(format: "%.4f", f.matmul / 1e9)),\"attention_gflop\":\(String(format: "%.4f", f.attention / 1e9)),"
                  + "\"parameters\":\(c.parameterCount)}")
        } else {
            print("\(c.name) at \(c.imgSize) px, \(c.tokens) tokens: \(String(format: "%.3f", f.total / 1e9)) GFLOP per image (linear layers and patch conv \(String(format: "%.3f", f.matmul / 1e9)), attention Q·Kᵀ and P·V \(String(format: "%.3f", f.attention / 1e9))); \(c.parameterCount) parameters")
        }
    }
}

struct ResolutionStudyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resolution",
        abstract: "Time and peak memory of the Vim-T and DeiT-T segmentation backbones with their feature pyramids at several image sizes; write resolution-study.md and resolution-study.svg.",
        discussion: """
        Untrained weights, evaluation mode. Per model and size: the median time of batch-1 \
        forward passes, the peak of live tensors at batch 1, and the largest batch within the \
        memory budget, extrapolated from the peaks at batches 1 and 2 (an estimate). Sizes that \
        are not multiples of 32 run at the multiple of 32 below them (738 as 736).
        """)

    @Option(help: "Image sizes in pixels, comma-separated.") var sizes: String = "512,640,738,1024,1248"
    @Option(help: "Timed batch-1 passes per model and size (after one warm-up).") var repeats: Int = 2
    @Option(help: "Models, comma-separated: vim-tiny, deit-tiny.") var models: String = "vim-tiny,deit-tiny"
    @Option(name: .customLong("memory-budget-gib"), help: "The memory the largest batch must fit in, GiB.") var memoryBudget: Double = 16
    @Option(help: "Also measure one pass at this batch per model and size (time per image and peak memory).") var batch: Int?
    @Option(name: .customLong("output-dir"), help: "Folder for resolution-study.md and resolution-study.svg.") var outputDir: String = "runs/resolution-study"
    @Flag(help: "Replace the files of an earlier study in --output-dir.") var overwrite = false
    @OptionGroup var threadOptions: ThreadOptions

    func parsedSizes() throws -> [Int] {
        let parts = sizes.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let values = parts.compactMap { Int($0) }
        guard !parts.isEmpty, values.count == parts.count, values.allSatisfy({ (32...4096).contains($0) }) else {
            throw ValidationError("--sizes takes comma-separated sizes in 32...4096 px (got '\(sizes.prefix(80))')")
        }
        return values
    }

    func parsedModels() throws -> [ResolutionStudy.Model] {
        let parts = models.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let values = parts.compactMap(ResolutionStudy.Model.init(rawValue:))
        guard !parts.isEmpty, values.count == parts.count else {
            throw ValidationError("--models takes vim-tiny and/or deit-tiny, comma-separated (got '\(models.prefix(80))')")
        }
        return values
    }

    func validate() throws {
        _ = try parsedSizes()
        _ = try parsedModels()
        if !(1...1000).contains(repeats) { throw ValidationError("--repeats must be in 1...1000") }
        if !(memoryBudget > 0 && memoryBudget <= 1_048_576) { throw ValidationError("--memory-budget-gib must be positive (at most 2^20)") }
        if let batch, !(2...4096).contains(batch) { throw ValidationError("--batch must be in 2...4096") }
    }

    func run() throws {
        threadOptions.apply()
        let study = try ResolutionStudy(sizes: try parsedSizes(), repeats: repeats, models: try parsedModels(),
                                        memoryBudget: Int(memoryBudget * Double(1 << 30)), largeBatch: batch, outputDir: outputDir, overwrite: overwrite)
        let rows = try study.run(events: ProgressPrinter().handle)
        print(study.markdown(rows))
        print("wrote \(study.markdownPath) and \(study.svgPath)")
    }
}
