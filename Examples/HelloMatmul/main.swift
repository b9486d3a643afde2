// The first TensorFlow 1 program: a constant matrix product, compiled and run by Kiln.
import Kiln

let g = Graph()
let product = try g.device("/cpu:0") {
    let m1 = try g.constant([[3, 3]] as [[Float]])
    let m2 = try g.constant([[2], [2]] as [[Float]])
    return try g.matmul(m1, m2)
}
let sess = try Session(graph: g)
print(try sess.run(product))   // [[12.0]]
sess.close()
