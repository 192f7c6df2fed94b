import MambaTensor

/// How `pos_embed` moves to a new patch grid.
package enum PositionEmbeddingInterpolation: String, CaseIterable, Sendable {
    /// The class-token row is taken from its real index (the middle for Vim), the patch rows are
    /// resized bicubically as a grid, and the class row is re-inserted at the new class index.
    case classTokenAware = "cls-aware"
    /// As the official main.py `--finetune` does (spec/vim.md §5.13): row 0 is treated as the class
    /// row and rows 1… as the grid, although the class token sits in the middle. Reproduces the
    /// official stride-8 fine-tunes.
    case official
}

/// pos_embed rows [T, D] for a grid of side `newGrid`, from rows laid out for `config`.
package func interpolatePositionEmbedding(
    _ rows: [Float], config: VimConfig, newGrid: Int, mode: PositionEmbeddingInterpolation
) throws -> [Float] {
    try config.validate()
    let D = config.embedDim, M = config.numPatches, G = config.grid
    guard rows.count == (M + 1) * D else { throw TensorError.valueCountMismatch(tensor: "pos_embed", expected: (M + 1) * D, found: rows.count) }
    guard (1...65_536).contains(newGrid) else { throw TensorError.invalidArgument(name: "newGrid", value: Double(newGrid), allowed: "1...65536") }
    let clsRow = mode == .official ? 0 : config.clsIndex
    var cls = [Float](repeating: 0, count: D)
    var grid = [Float]()
    grid.reserveCapacity(M * D)
    for r in 0...M {
        let row = rows[(r * D)..<((r + 1) * D)]
        if r == clsRow { cls = Array(row) } else { grid += row }
    }
    let resized = bicubicResize(grid, inH: G, inW: G, channels: D, outH: newGrid, outW: newGrid)
    let newM = newGrid * newGrid
    // Official: class row first, then the grid, in sequence order. Class-aware: the class row at
    // the new model's class index (the middle for Vim, index 0 for a first-token model).
    let insertAt: Int
    switch (mode, config.clsPosition) {
    case (.official, _), (_, .first): insertAt = 0
    case (.classTokenAware, .middle): insertAt = newM / 2
    }
    var out = [Float]()
    out.reserveCapacity((newM + 1) * D)
    out += resized[0..<(insertAt * D)]
    out += cls
    out += resized[(insertAt * D)...]
    return out
}

extension VimModel {
    /// Moves the model to another input resolution by interpolating `pos_embed` over the patch grid.
    package func setImageSize(_ size: Int, interpolation mode: PositionEmbeddingInterpolation) throws {
        var c = config
        c.imgSize = size
        try c.validate()
        if c.grid == config.grid { replacePositionEmbedding(posEmbed, config: c); return }
        let rows = try interpolatePositionEmbedding(posEmbed.array, config: config, newGrid: c.grid, mode: mode)
        replacePositionEmbedding(try Tensor(shape: [1, c.tokens, c.embedDim], values: rows), config: c)
    }
}
