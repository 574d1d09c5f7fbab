fn main() {
    fuseflow_fuzz::run(fuseflow_fuzz::targets::expression)
}
