import Foundation
import MambaIO

/// The images named on a command line: files as given, folders as every .jpg, .jpeg and .png under
/// them at any depth, in sorted order (as timm's inference.py reads a folder).
package enum ImageFiles {
    package static func expand(_ paths: [String]) throws -> [String] {
        var out: [String] = []
        for path in paths {
            guard let (isFolder, _) = FolderWalk.folderID(path) else { throw FileError.notFound(path: path) }
            guard isFolder else { out.append(path); continue }
            let found = try FolderWalk.files(under: path) { ImageFolderDataset.extensions.contains(($0 as NSString).pathExtension.lowercased()) }
            guard !found.isEmpty else { throw DatasetError.noImages(path: path) }
            out += found.map(\.path)
        }
        return out
    }
}
