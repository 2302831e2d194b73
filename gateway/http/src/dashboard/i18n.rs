//! Russian and English labels of the dashboard. A missing key shows itself as the key.

/// The page language: `?lang=ru|en`, else the browser's Accept-Language, else Russian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ru,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::Ru => Lang::En,
            Lang::En => Lang::Ru,
        }
    }

    /// From a `lang` parameter, then an Accept-Language header.
    pub fn pick(param: Option<&str>, accept_language: Option<&str>) -> Lang {
        match param {
            Some("en") => return Lang::En,
            Some("ru") => return Lang::Ru,
            _ => {}
        }
        let accept = accept_language.unwrap_or("").to_ascii_lowercase();
        let first = accept.split(',').next().unwrap_or("").trim();
        if first.starts_with("en") {
            Lang::En
        } else {
            Lang::Ru
        }
    }
}

const LABELS: &[(&str, &str, &str)] = &[
    ("title", "Межвед — панель", "Mezhved dashboard"),
    ("login", "Вход", "Sign in"),
    ("user", "Пользователь", "User"),
    ("password", "Пароль", "Password"),
    (
        "login_failed",
        "Неверное имя пользователя или пароль",
        "Wrong user name or password",
    ),
    ("logout", "Выйти", "Sign out"),
    ("overview", "Обзор", "Overview"),
    ("agencies", "Ведомства", "Agencies"),
    ("overdue", "Просроченные", "Overdue"),
    ("alerts", "Оповещения", "Alerts"),
    ("registry", "Реестр", "Registry"),
    ("maintenance", "Обслуживание", "Maintenance"),
    ("journal", "Журнал", "Journal"),
    ("checkpoints", "Контрольные точки", "Checkpoints"),
    ("reports", "Отчёты", "Reports"),
    ("system", "Система", "System"),
    ("participant", "Участник", "Participant"),
    ("name", "Название", "Name"),
    ("state", "Состояние", "State"),
    ("rule", "Правило", "Rule"),
    ("queue", "Очередь", "Queue"),
    ("oldest", "Старейшее", "Oldest"),
    ("last_poll", "Последний опрос", "Last poll"),
    ("last_success", "Последний успешный вызов", "Last success"),
    ("calls", "Вызовы", "Calls"),
    ("errors", "Ошибки", "Errors"),
    ("rejections", "Отказы", "Rejections"),
    ("p50", "Время ответа p50, мс", "Response time p50, ms"),
    ("p95", "Время ответа p95, мс", "Response time p95, ms"),
    (
        "certificate_days",
        "Дней до истечения сертификата",
        "Certificate days left",
    ),
    ("kinds", "Виды сведений", "Kinds of information"),
    ("grants", "Доступы", "Grants"),
    ("systems", "Информационные системы", "Information systems"),
    ("participants", "Участники", "Participants"),
    ("provider", "Поставщик", "Provider"),
    ("consumer", "Потребитель", "Consumer"),
    ("due", "Срок", "Due"),
    ("received", "Получено", "Received"),
    ("none", "нет", "none"),
    ("enabled", "Включено", "On"),
    ("disabled", "Выключено", "Off"),
    ("reason", "Причина", "Reason"),
    (
        "switch_on",
        "Включить обслуживание",
        "Switch maintenance on",
    ),
    (
        "switch_off",
        "Выключить обслуживание",
        "Switch maintenance off",
    ),
    ("search", "Найти", "Search"),
    ("from", "С", "From"),
    ("to", "По", "To"),
    ("agency", "Ведомство", "Agency"),
    ("status", "Статус", "Status"),
    ("global_id", "Глобальный ID", "Global ID"),
    ("card", "Карточка", "Card"),
    ("events", "События", "Events"),
    ("proof", "Доказательство включения", "Inclusion proof"),
    (
        "proof_ok",
        "проверено по контрольной точке",
        "verified against the checkpoint",
    ),
    ("proof_bad", "НЕ ПРОВЕРЕНО", "NOT VERIFIED"),
    (
        "proof_none",
        "нет подписанной контрольной точки, включающей событие",
        "no signed checkpoint covers the event yet",
    ),
    ("size", "Размер", "Size"),
    ("root", "Корень", "Root"),
    ("made_at", "Подписана", "Signed at"),
    ("verification", "Проверка", "Verification"),
    (
        "evaluation",
        "Отчёт об оценке (HTML)",
        "Evaluation report (HTML)",
    ),
    (
        "forbidden",
        "Доступ запрещён для вашей роли",
        "Your role may not open this page",
    ),
    ("not_found", "Не найдено", "Not found"),
    (
        "csrf",
        "Форма устарела или подделана",
        "The form is stale or forged",
    ),
    ("type", "Тип", "Type"),
    ("at", "Время", "Time"),
    ("actor", "Кто", "Actor"),
    ("kind", "Вид сведений", "Kind"),
    ("subject", "Объект", "Subject"),
    ("value", "Значение", "Value"),
    ("opened", "Открыто", "Opened"),
    ("traffic", "Трафик", "Traffic"),
    ("queues", "Очереди", "Queues"),
    ("age", "Ждёт", "Waiting for"),
    (
        "unavailable",
        "Вход временно невозможен: журнал недоступен",
        "Sign-in is unavailable: the journal cannot record it",
    ),
    ("window_min", "за последние, мин", "in the last, min"),
    ("waiting", "Ждут получения", "Waiting"),
    ("lights", "Состояние систем", "Systems by state"),
];

/// The label `key` in `lang`.
pub fn t(lang: Lang, key: &'static str) -> &'static str {
    LABELS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, ru, en)| match lang {
            Lang::Ru => *ru,
            Lang::En => *en,
        })
        .unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_comes_from_the_parameter_then_the_header() {
        assert_eq!(Lang::pick(Some("en"), Some("ru")), Lang::En);
        assert_eq!(Lang::pick(None, Some("en-GB,en;q=0.9")), Lang::En);
        assert_eq!(Lang::pick(None, None), Lang::Ru);
        assert_eq!(t(Lang::En, "login"), "Sign in");
        assert_eq!(t(Lang::Ru, "login"), "Вход");
    }
}
