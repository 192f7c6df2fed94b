/// A PyTorch checkpoint as torch.save (zip format, PyTorch ≥ 1.6) writes it: `<prefix>/data.pkl`,
/// the pickled object, and `<prefix>/data/<key>` holding each storage's raw bytes.
package struct TorchCheckpoint {
    package let path: String
    /// The unpickled top-level object (for the released Vim files: a dict with model, optimizer,
    /// lr_scheduler, epoch, model_ema, scaler and args).
    package let root: PickleValue
    let archive: ZipArchive
    let prefix: String

    package static func read(_ path: String) throws -> TorchCheckpoint {
        try read(ZipArchive(path))
    }

    static func read(_ archive: ZipArchive) throws -> TorchCheckpoint {
        let path = archive.path
        guard let pkl = archive.names.first(where: { $0.hasSuffix("/data.pkl") || $0 == "data.pkl" }) else {
            throw FileError.missingEntry(path: path, entry: "data.pkl")
        }
        let prefix = String(pkl.dropLast("data.pkl".count))
        let (storage, offset, count) = try archive.data(pkl)
        var unpickler = Unpickler(path: path, bytes: UnsafeRawBufferPointer(start: storage.pointer + offset, count: count))
        let root = try unpickler.load()
        return TorchCheckpoint(path: path, root: root, archive: archive, prefix: prefix)
    }

    /// Keys of the top-level dict, if it is one.
    package var topLevelKeys: [String] {
        if case .dict(let d) = root { return d.keys.compactMap(\.stringValue) }
        return []
    }

    /// The model's state dict: the top-level dict if it holds tensors, else the one under
    /// "model", "state_dict" or "model_ema" (in that order); a leading "module." (from
    /// DistributedDataParallel) is removed from every name; non-tensor entries are skipped.
    package func stateDict() throws -> TensorFile {
        guard case .dict(let top) = root else { throw FileError.noStateDict(path: path, keys: []) }
        var source = top
        if !Self.holdsTensors(top) {
            guard let found = ["model", "state_dict", "model_ema"].lazy.compactMap({ key -> PickleDict? in
                if case .dict(let d)? = top[key], Self.holdsTensors(d) { return d }
                return nil
            }).first else {
                throw FileError.noStateDict(path: path, keys: topLevelKeys)
            }
            source = found
        }
        var file = TensorFile()
        var copyBudget = copyAllowance
        for (k, v) in zip(source.keys, source.values) {
            guard var name = k.stringValue, case .tensor(let t) = v else { continue }
            if name.hasPrefix("module.") { name.removeFirst("module.".count) }
            file.append(name, try tensor(t, name: name, copyBudget: &copyBudget))
        }
        return file
    }

    static func holdsTensors(_ d: PickleDict) -> Bool {
        d.values.contains { if case .tensor = $0 { true } else { false } }
    }

    /// A view may hold more elements than its storage (stride 0, as `expand` makes) only up to
    /// this many, so that a few bytes of pickle cannot ask for a copy of gigabytes.
    package static let maxExpandedElements = 1 << 24

    /// The bytes all strided views read from one checkpoint may copy: the archive's size, plus
    /// one largest expansion. Without a total, a state dict whose entries all name one memoized
    /// expanded view (8 bytes of pickle each) would copy 128 MiB per entry.
    var copyAllowance: Int { archive.map.count + Self.maxExpandedElements * 8 }

    /// A view of the tensor's elements in its storage; a non-contiguous view is copied to row-major.
    /// Sizes, strides and offsets come from the file: every product and sum is overflow-checked
    /// and the view is bounds-checked against the storage before anything is read or allocated.
    package func tensor(_ t: PickleTensor, name: String) throws -> StoredTensor {
        var copyBudget = copyAllowance
        return try tensor(t, name: name, copyBudget: &copyBudget)
    }

    /// The same, taking the bytes a copy needs from `copyBudget`.
    func tensor(_ t: PickleTensor, name: String, copyBudget: inout Int) throws -> StoredTensor {
        let (bytes, base, count) = try archive.data(prefix + "data/" + t.storage.key)
        let esize = t.storage.dtype.byteCount
        guard t.offset >= 0, t.shape.allSatisfy({ $0 >= 0 }), t.stride.allSatisfy({ $0 >= 0 }), t.shape.count == t.stride.count else {
            throw FileError.invalidShape(path: path, tensor: name, shape: t.shape)
        }
        guard let storageBytes = checkedProduct([t.storage.count, esize]) else { throw FileError.sizeOverflow(path: path, tensor: name) }
        guard count >= storageBytes else {
            throw FileError.storageTooSmall(path: path, tensor: name, needed: storageBytes, available: count)
        }
        guard let elements = checkedProduct(t.shape) else { throw FileError.sizeOverflow(path: path, tensor: name) }
        if elements == 0 { return StoredTensor(dtype: t.storage.dtype, shape: t.shape, storage: bytes, offset: base) }
        // The last element any index can reach, offset + Σ (size − 1)·stride, must lie inside the storage.
        var last = t.offset
        for (size, stride) in zip(t.shape, t.stride) {
            let (step, o1) = (size - 1).multipliedReportingOverflow(by: stride)
            let (sum, o2) = last.addingReportingOverflow(step)
            guard !o1, !o2 else { throw FileError.sizeOverflow(path: path, tensor: name) }
            last = sum
        }
        guard last < t.storage.count else {
            throw FileError.viewOutOfStorage(path: path, tensor: name, lastElement: last, storageElements: t.storage.count)
        }
        guard elements <= max(t.storage.count, Self.maxExpandedElements) else {
            throw FileError.expansionTooLarge(path: path, tensor: name, elements: elements, storageElements: t.storage.count)
        }
        var contiguous = [Int](repeating: 1, count: t.shape.count)
        for i in stride(from: t.shape.count - 2, through: 0, by: -1) { contiguous[i] = contiguous[i + 1] * t.shape[i + 1] }
        let isContiguous = zip(zip(t.shape, t.stride), contiguous).allSatisfy { $0.0.0 == 1 || $0.0.1 == $0.1 }
        if isContiguous {
            return StoredTensor(dtype: t.storage.dtype, shape: t.shape, storage: bytes, offset: base + t.offset * esize)
        }
        let copied = elements * esize                   // at most 8 · max(storage, 2^24): no overflow
        guard copied <= copyBudget else {
            throw FileError.copiesTooLarge(path: path, tensor: name, bytes: copyAllowance - copyBudget + copied, limit: copyAllowance)
        }
        copyBudget -= copied
        // Gather a strided view into row-major order. Dimensions of size 1 move nothing, and
        // without them at most 63 remain (each other size is at least 2): an odometer over
        // the rest costs amortised O(1) per element, however many dimensions the file lists.
        let dims = zip(t.shape, t.stride).filter { $0.0 != 1 }
        let out = UnsafeMutableRawPointer.allocate(byteCount: elements * esize, alignment: 64)
        var index = [Int](repeating: 0, count: dims.count)
        var src = t.offset                              // offset + Σ index·stride, kept up to date
        for i in 0..<elements {
            (out + i * esize).copyMemory(from: bytes.pointer + base + src * esize, byteCount: esize)
            var d = dims.count - 1
            while d >= 0 {
                index[d] += 1
                src += dims[d].1
                if index[d] < dims[d].0 { break }
                src -= index[d] * dims[d].1
                index[d] = 0
                d -= 1
            }
        }
        let owned = StorageBytes(pointer: UnsafeRawPointer(out), count: elements * esize, release: { out.deallocate() })
        return StoredTensor(dtype: t.storage.dtype, shape: t.shape, storage: owned)
    }
}
