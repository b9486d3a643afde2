@_exported import KilnFrontend
@_exported import KilnRuntime
@_exported import KilnIR
