//! The datasync command line.

fn main() {
    println!("datasync");
}
