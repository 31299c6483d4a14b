use yew::prelude::*;
#[function_component(App)]
pub fn app() -> Html { html! { <p>{"Glassbox"}</p> } }
