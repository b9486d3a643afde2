/// IR programs of variable writes that may share a loop (`KernelPlan.Kernel.writes`), for the
/// plan's tests and every backend's alike.
public enum WriteLoopPrograms {
    static func dims(_ shape: [Int]) -> String { shape.map(String.init).joined(separator: ",") }

    /// An Adam update of w (%0) of `shape` with its slots m (%1) and v (%2) from gradient g (%3)
    /// and learning rate lr (%4): writes %13 (m = %12), %23 (v = %22), then %35 (w = %34), which
    /// reads both slots' new values.
    public static func adam(_ shape: [Int]) -> String {
        let s = dims(shape)
        return """
        func @adam(%0: f32[\(s)] var "w", %1: f32[\(s)] var "m", %2: f32[\(s)] var "v", %3: f32[\(s)] feed "g", %4: f32[] feed "lr") {
          %5 = constant f32[] 0.9
          %6 = broadcast %5 shape=[\(s)] dims=[]
          %7 = constant f32[] 0.1
          %8 = broadcast %7 shape=[\(s)] dims=[]
          %9 = var.read %1
          %10 = mul %9, %6
          %11 = mul %3, %8
          %12 = add %10, %11
          %13 = var.write %1, %12
          %14 = constant f32[] 0.999
          %15 = broadcast %14 shape=[\(s)] dims=[]
          %16 = constant f32[] 0.001
          %17 = broadcast %16 shape=[\(s)] dims=[]
          %18 = var.read %2
          %19 = mul %18, %15
          %20 = mul %3, %3
          %21 = mul %20, %17
          %22 = add %19, %21
          %23 = var.write %2, %22
          %24 = broadcast %4 shape=[\(s)] dims=[]
          %25 = var.read %1
          %26 = mul %24, %25
          %27 = var.read %2
          %28 = sqrt %27
          %29 = constant f32[] 1e-8
          %30 = broadcast %29 shape=[\(s)] dims=[]
          %31 = add %28, %30
          %32 = div %26, %31
          %33 = var.read %0
          %34 = sub %33, %32
          %35 = var.write %0, %34
          return
        }
        """
    }

    /// a (%0) = x (%2), then b (%1) = transpose(a) + x, reading a at (j, i) for (i, j), which a
    /// shared loop may not have written yet: writes %3 (a = %2) and %7 (b = %6), each n x n.
    public static func transposedRead(_ n: Int) -> String {
        """
        func @transposed(%0: f32[\(n),\(n)] var "a", %1: f32[\(n),\(n)] var "b", %2: f32[\(n),\(n)] feed "x") {
          %3 = var.write %0, %2
          %4 = var.read %0
          %5 = transpose %4 perm=[1,0]
          %6 = add %5, %2
          %7 = var.write %1, %6
          return
        }
        """
    }

    /// w (%0) -= g (%3) times a scale, the step counter (%2) += 1, then w's moving average
    /// shadow (%1) reading the incremented step and w's new value: writes %9 (w = %8), %13 (step
    /// = %12), %21 (shadow = %20), n elements each. The scale is the step before its increment
    /// when `scaledByStep` (so nothing can move), else 0.5 (so the step's write may move before
    /// w's and the average join w's loop).
    public static func movingAverage(_ n: Int, scaledByStep: Bool) -> String {
        """
        func @average(%0: f32[\(n)] var "w", %1: f32[\(n)] var "shadow", %2: f32[] var "step", %3: f32[\(n)] feed "g") {
          %4 = var.read %0
          %5 = \(scaledByStep ? "var.read %2" : "constant f32[] 0.5")
          %6 = broadcast %5 shape=[\(n)] dims=[]
          %7 = mul %3, %6
          %8 = sub %4, %7
          %9 = var.write %0, %8
          %10 = var.read %2
          %11 = constant f32[] 1.0
          %12 = add %10, %11
          %13 = var.write %2, %12
          %14 = var.read %2
          %15 = broadcast %14 shape=[\(n)] dims=[]
          %16 = var.read %1
          %17 = var.read %0
          %18 = sub %16, %17
          %19 = div %18, %15
          %20 = sub %16, %19
          %21 = var.write %1, %20
          return
        }
        """
    }
}
