fn main() {
    fuseflow_fuzz::run(fuseflow_fuzz::targets::model)
}
