import KilnIR

/// tf.losses: loss functions that reduce to a scalar and register in the LOSSES collection.
extension Graph {
    public func addLoss(_ loss: some OutputConvertible) { addToCollection(GraphKeys.losses, loss.output) }

    public var losses: [Output] { collection(GraphKeys.losses).compactMap { $0 as? Output } }
    public var regularizationLosses: [Output] { collection(GraphKeys.regularizationLosses).compactMap { $0 as? Output } }

    /// The sum of the regularisation losses (0 when there are none).
    public func regularizationLoss(name: String = "total_regularization_loss") throws -> Output {
        let r = regularizationLosses
        return r.isEmpty ? try constant(0 as Float, name: name) : try addN(r, name: name)
    }

    /// Sum of LOSSES and, by default, REGULARIZATION_LOSSES (tf.losses.get_total_loss).
    public func totalLoss(addRegularizationLosses: Bool = true, name: String = "total_loss") throws -> Output {
        let all = losses + (addRegularizationLosses ? regularizationLosses : [])
        guard !all.isEmpty else { throw KilnError.invalidArgument("total_loss: no losses have been added (LOSSES is empty)") }
        return try addN(all, name: name)
    }

    /// Mean softmax cross entropy over the batch, added to LOSSES.
    public func softmaxCrossEntropyLoss(onehotLabels: some OutputConvertible, logits: some OutputConvertible,
                                        name: String = "softmax_cross_entropy_loss") throws -> Output {
        let l = try nameScope(name) { try reduceMean(softmaxCrossEntropyWithLogits(labels: stopGradient(onehotLabels), logits: logits), name: "value") }
        addLoss(l)
        return l
    }

    /// Mean sparse softmax cross entropy over the batch, added to LOSSES.
    public func sparseSoftmaxCrossEntropyLoss(labels: some OutputConvertible, logits: some OutputConvertible,
                                              name: String = "sparse_softmax_cross_entropy_loss") throws -> Output {
        let l = try nameScope(name) { try reduceMean(sparseSoftmaxCrossEntropyWithLogits(labels: labels, logits: logits), name: "value") }
        addLoss(l)
        return l
    }

    /// Mean of (labels - predictions)², added to LOSSES.
    public func meanSquaredErrorLoss(labels: some OutputConvertible, predictions: some OutputConvertible,
                                     name: String = "mean_squared_error") throws -> Output {
        let l = try nameScope(name) { try reduceMean(squaredDifference(predictions, labels), name: "value") }
        addLoss(l)
        return l
    }

    /// Fraction of rows whose argmax matches the label: TensorFlow 1 programs' accuracy
    /// (`reduce_mean(cast(equal(argmax(logits, 1), labels), float32))`). Labels are class ids
    /// or one-hot rows.
    public func accuracy(logits: some OutputConvertible, labels: some OutputConvertible, name: String = "accuracy") throws -> Output {
        let l = labels.output
        return try nameScope(name) {
            let predicted = try argmax(logits, axis: 1)
            let truth = l.shape.rank == 2 ? try argmax(l, axis: 1) : try cast(l, to: .int64)
            return try reduceMean(cast(equal(predicted, truth), to: .float32))
        }
    }

    /// A string tensor naming the variables whose initialiser has not run in the session that
    /// runs it (tf.report_uninitialized_variables).
    public func reportUninitializedVariables(_ vars: [Variable]? = nil, name: String = "report_uninitialized_variables") throws -> Output {
        try addOperation("ReportUninitializedVariables", name: name, attrs: ["var_names": .strings((vars ?? globalVariables).map(\.name))]).output()
    }
}
