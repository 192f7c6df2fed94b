import Foundation

/// The 1,000 ImageNet-1k classes in the released models' label order (the synset ids sorted, as
/// torchvision's ImageFolder numbers them), each by its synset's first lemma: "tench", "goldfish", …
package enum ImageNetClasses {
    /// Bundled with the package (Resources/imagenet-classes.txt, one name per line).
    package static func names() throws -> [String] {
        guard let url = Bundle.module.url(forResource: "imagenet-classes", withExtension: "txt"),
              let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw ConfigError.unreadableFile(path: "imagenet-classes.txt (bundled)")
        }
        let names = text.split(separator: "\n").map(String.init)
        guard names.count == 1000 else { throw ConfigError.unreadableFile(path: url.path) }
        return names
    }
}
