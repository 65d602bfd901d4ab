//! `DEVICE_STATUS.csv`, the reference server's status table: its columns and rendering.

use crate::domain::device::Device;

/// Column titles and widths of the reference `DEVICE_STATUS.csv` (ianz94's layout).
pub(crate) const STATUS_COLUMNS: [(&str, usize); 12] = [
    ("Serial Number", 15),
    ("Platform", 16),
    ("HW rev.", 9),
    ("IP Address", 16),
    ("First Seen", 24),
    ("Last Contact", 24),
    ("Current Version", 22),
    ("Target Image", 40),
    ("Guestshell Tarball", 20),
    ("Python Script", 15),
    ("Config Update", 15),
    ("Device State", 22),
];

fn done(b: bool) -> &'static str {
    if b { "Done" } else { "Not yet" }
}

/// Renders the status table: `|`-separated, each cell centred in its fixed width.
pub(crate) fn status_table(devices: &[Device]) -> String {
    let mut w = csv::WriterBuilder::new()
        .delimiter(b'|')
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    let cell = |s: &str, width: usize| format!("{s:^width$}");
    let header: Vec<String> = STATUS_COLUMNS.iter().map(|(t, w)| cell(t, *w)).collect();
    let _ = w.write_record(&header);
    for d in devices {
        let values = [
            d.serial.clone(),
            d.pid.clone(),
            d.vid.clone(),
            d.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            crate::domain::bench::utc(d.first_seen),
            crate::domain::bench::utc(d.last_contact),
            d.current_version.clone(),
            d.target_image.clone(),
            done(d.tarball_done).to_string(),
            done(d.script_done).to_string(),
            done(d.config_file.is_some()).to_string(),
            d.state.as_str().to_string(),
        ];
        let row: Vec<String> = values
            .iter()
            .zip(STATUS_COLUMNS)
            .map(|(v, (_, width))| cell(v, width))
            .collect();
        let _ = w.write_record(&row);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::device::State;

    #[test]
    fn status_table_matches_reference_header_and_centres_cells() {
        let t = status_table(&[]);
        assert_eq!(
            t,
            " Serial Number |    Platform    | HW rev. |   IP Address   |       First Seen       |      Last Contact      |   Current Version    |              Target Image              | Guestshell Tarball | Python Script | Config Update |     Device State     \n"
        );
        let now = chrono::Local::now();
        let mut d = Device::new(
            "FGL1",
            "PID:C1131-8PWB,VID:V01,SN:FGL1",
            "C1131-8PWB",
            "V01",
            now,
        );
        d.state = State::Finished;
        d.tarball_done = true;
        let t = status_table(&[d]);
        let row = t.lines().nth(1).unwrap();
        let cells: Vec<&str> = row.split('|').collect();
        assert_eq!(cells.len(), 12);
        assert_eq!(cells[0], "     FGL1      ");
        assert_eq!(cells[8].trim(), "Done");
        assert_eq!(cells[9].trim(), "Not yet");
        assert_eq!(cells[11].trim(), "FINISHED");
        assert_eq!(cells[4].trim(), crate::domain::bench::utc(now));
    }
}
