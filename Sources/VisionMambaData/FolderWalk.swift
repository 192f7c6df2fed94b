import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The files under a folder at any depth, following links to folders as torchvision's
/// ImageFolder does (`os.walk(followlinks=True)`), but stopping at a link back to a folder it is
/// already inside, where os.walk would descend until the path grows too long.
enum FolderWalk {
    /// A folder's identity: a link or a bind mount shows one folder under many paths.
    struct FolderID: Hashable {
        let device: UInt64
        let inode: UInt64
    }

    /// What `path` names after following links; nil when it cannot be stat'ed (a broken link),
    /// which the caller treats as a file, so that reading it reports the problem.
    static func folderID(_ path: String) -> (isFolder: Bool, id: FolderID)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let id = FolderID(device: UInt64(truncatingIfNeeded: info.st_dev), inode: UInt64(truncatingIfNeeded: info.st_ino))
        return ((info.st_mode & S_IFMT) == S_IFDIR, id)
    }

    /// The folders `folder` lies in, itself included: every prefix of its absolute path. A link
    /// to any of them would lead back to `folder`.
    static func ancestors(of folder: String) -> Set<FolderID> {
        let absolute = folder.hasPrefix("/") ? folder : FileManager.default.currentDirectoryPath + "/" + folder
        var paths = ["/"], prefix = ""
        for part in absolute.split(separator: "/") {
            prefix += "/" + part
            paths.append(prefix)
        }
        return Set(paths.compactMap { path in folderID(path).flatMap { $0.isFolder ? $0.id : nil } })
    }

    /// Python's sorted() order for str: by code point.
    static func precedes(_ a: String, _ b: String) -> Bool {
        a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
    }

    /// The names in a folder, except hidden ones: dot files are macOS metadata (`._x.jpg`,
    /// `.DS_Store`) or tool folders (`.ipynb_checkpoints`), never images of a class.
    static func visibleNames(_ folder: String) throws -> [String] {
        do { return try FileManager.default.contentsOfDirectory(atPath: folder).filter { !$0.hasPrefix(".") } }
        catch { throw DatasetError.unreadable(path: folder) }
    }

    /// Files under `folder` (at any depth) that `keep` accepts, as (path relative to `folder`,
    /// full path), sorted by the relative path so that the order is the same on every machine.
    /// Iterative, so a deep tree cannot exhaust the stack.
    static func files(under folder: String, keep: (String) -> Bool) throws -> [(relative: String, path: String)] {
        var found: [(relative: String, path: String)] = []
        var pending: [(path: String, relative: String, ancestors: Set<FolderID>)] = [(folder, "", ancestors(of: folder))]
        while let (dir, relative, inside) = pending.popLast() {
            for name in try visibleNames(dir) {
                let path = dir + "/" + name, rel = relative.isEmpty ? name : relative + "/" + name
                if let (isFolder, id) = folderID(path), isFolder {
                    if inside.contains(id) { throw DatasetError.linkCycle(path: path) }
                    pending.append((path, rel, inside.union([id])))
                } else if keep(name) {
                    found.append((rel, path))
                }
            }
        }
        return found.sorted { precedes($0.relative, $1.relative) }
    }
}
