pub fn _x() -> bool { cel::parser::Parser::new().parse("1+1").is_ok() }
