import Foundation
import MambaIO
import VisionMambaModels

/// What a weights file holds a model of: its shape (with DyVM and fusion settings), its class
/// names, how an image file becomes its input, and the dataset it was trained on. A training
/// checkpoint of this package stores all of it; for released weights (.pth) the shape is given
/// and the rest follows the official ImageNet models.
package struct ModelDescription: Sendable {
    package var config: VimConfig
    /// Class i's name; nil when neither the checkpoint nor the model's kind names them.
    package var classNames: [String]?
    package var transform: InputTransform
    /// The dataset a training checkpoint was trained on, and its folder.
    package var dataset: DatasetKind?
    package var dataPath: String?

    /// `config` nil: the shape stored in the training checkpoint at `weights`; a given `config`
    /// overrides it (and names a released file's model).
    package init(weights: String, config: VimConfig? = nil) throws {
        let state = try Checkpoint.storedState(weights)
        guard let config = config ?? state?.options.model else { throw TrainingError.notATrainingCheckpoint(path: weights) }
        self.config = config
        if let state {
            dataset = state.options.dataset
            dataPath = state.options.dataPath
            classNames = state.classNames?.count == config.numClasses ? state.classNames : nil
            transform = state.transform ?? .imagenet(size: config.imgSize)
        } else {
            // Released weights: the ImageNet-1k models and their eval transform.
            classNames = config.numClasses == 1000 ? try ImageNetClasses.names() : nil
            transform = .imagenet(size: config.imgSize)
        }
    }
}
