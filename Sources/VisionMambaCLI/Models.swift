import ArgumentParser
import Foundation
import VisionMambaModels

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the model zoo: names, aliases (timm's underscore spelling works too), parameters, tokens and released weights.")

    func run() throws {
        print(row("name", "aliases", "params", "tokens", "released weights"))
        for e in ModelZoo.entries {
            let c = e.config
            print(row(e.name, e.aliases.joined(separator: ", "), String(VimModel.parameterCount(c)),
                      String(c.tokens), e.weightsURL ?? "-"))
        }
        print("")
        print(row("DeiT (timm)", "aliases", "params", "tokens", "released weights"))
        for e in ModelZoo.deitEntries {
            print(row(e.name, e.aliases.joined(separator: ", "), String(e.config.parameterCount), String(e.config.tokens), e.weightsURL ?? "-"))
        }
        print("")
        print(row("segmentation (UperNet, ADE20K recipe)", "aliases", "params", "tokens", "crop"))
        for e in ModelZoo.segmentationEntries {
            let model = try Segmentor(config: e.config)
            print(row(e.name, e.aliases.joined(separator: ", "), String(model.parameterCount), String(e.config.tokens),
                      "\(e.config.backbone.imgSize) px, \(e.config.numClasses) classes"))
        }
    }

    private func row(_ name: String, _ aliases: String, _ params: String, _ tokens: String, _ weights: String) -> String {
        let n = name.padding(toLength: 92, withPad: " ", startingAt: 0)
        let a = aliases.padding(toLength: 42, withPad: " ", startingAt: 0)
        return n + a + params.leftPadded(to: 10) + tokens.leftPadded(to: 8) + "  " + weights
    }
}

extension String {
    func leftPadded(to n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
