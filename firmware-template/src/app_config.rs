// Rendered by tinypipe from project.yaml (`sensor:`) and the reference stage (the class names) for the
// board's application: the `app_config` module of its src/board/<support>.rs.

pub const WINDOW: usize = 2;
pub const SAMPLE_RATE_HZ: u32 = 50;
pub const CLASSES: &[&str] = &["wave", "tap", "none"];

// the window the application keeps: the model input, or with features the raw samples behind them
const _: () = assert!(crate::TEST_WINDOW_LEN == WINDOW * 3, "a window must be WINDOW samples of 3 axes");
