import ArgumentParser
import Foundation
import MambaTensor
import VisionMambaModels
import VisionMambaTraining

struct Study: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Comparative studies.", subcommands: [FusionStudyCommand.self, ResolutionStudyCommand.self])
}

struct FusionStudyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fusion",
        abstract: "Train one model under no fusion and the four Famba-V strategies at a matched token budget; write fusion-study.md and fusion-study.svg.",
        discussion: """
        Arms: none; all (every block removes r); interleave (odd blocks, 2r); lower (the lower \
        three quarters of the blocks, r·4/3) and upper (the upper three quarters, r·4/3), with the \
        paper's meaning of lower and upper. Every arm takes the same recipe flags as train.
        """)

    @OptionGroup var recipe: RecipeOptions
    @Option(name: .customLong("fusion-tokens"), help: "r of the all-blocks arm; the other arms remove about as many tokens in all.")
    var tokens: Int = 1
    @Option(name: .customLong("fusion-order"), help: "paper or preserve (merged tokens keep their spatial order; a deviation).")
    var order: FusionOrder = .paper
    @Option(name: .customLong("output-dir"), help: "Folder of the study: one run per strategy, the table and the chart.") var outputDir: String = "runs/fusion-study"
    @Flag(help: "Let the study replace the runs already in --output-dir.") var overwrite = false
    @OptionGroup var threadOptions: ThreadOptions

    func validate() throws {
        if tokens < 1 { throw ValidationError("--fusion-tokens must be at least 1") }
    }

    func run() throws {
        threadOptions.apply()
        let study = try FusionStudy(base: try recipe.makeOptions(), tokens: tokens, preserveOrder: order == .preserve, outputDir: outputDir, overwrite: overwrite)
        let rows = try study.run(events: ProgressPrinter().handle)
        print(study.markdown(rows))
        print("wrote \(outputDir)/fusion-study.md and \(outputDir)/fusion-study.svg")
    }
}
