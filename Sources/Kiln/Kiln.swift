@_exported import KilnFrontend
@_exported import KilnRuntime
@_exported import KilnIR

/// Foundation also declares `Operation`; `GraphOperation` names Kiln's without qualification.
public typealias GraphOperation = KilnFrontend.Operation
