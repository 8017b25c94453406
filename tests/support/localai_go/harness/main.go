// localai-chat: what LocalAI v2.24.0 does with a /v1/chat/completions request before and
// after the backend runs, without the backend. Tests only (tests/support/localai_chat.py).
//
// stdin:  {"model_yaml": "<a model config>", "request": {<OpenAI chat request>},
//
//	"output": "<what the model generated>" (optional)}
//
// stdout: {"prompt", "grammar", "use_functions", "choices" (with output), "error"}
//
// The model config is read with yaml.v3 into the fields LocalAI's BackendConfig gives them
// (v2.24.0:core/config/backend_config.go). The request is decoded into LocalAI's own
// schema.OpenAIRequest, and everything from there on is LocalAI's code: the vendored
// packages under ../src (pkg/functions for grammars and parsing, pkg/templates for Go
// templates with sprig) and, below, the steps of the HTTP handlers copied from v2.24.0
// with their line numbers. Only the backend call (ComputeChoices) is absent: the caller
// passes its output, produced by llama.cpp under the grammar printed here.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/mudler/LocalAI/core/schema"
	"github.com/mudler/LocalAI/pkg/functions"
	"github.com/mudler/LocalAI/pkg/templates"
	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"
)

// Template types, as v2.24.0:pkg/model/template.go numbers them.
const (
	ChatPromptTemplate templates.TemplateType = iota
	ChatMessageTemplate
)

// v2.24.0:core/config/backend_config.go, TemplateConfig.
type TemplateConfig struct {
	Chat                        string  `yaml:"chat"`
	ChatMessage                 string  `yaml:"chat_message"`
	Completion                  string  `yaml:"completion"`
	Edit                        string  `yaml:"edit"`
	Functions                   string  `yaml:"function"`
	UseTokenizerTemplate        bool    `yaml:"use_tokenizer_template"`
	JoinChatMessagesByCharacter *string `yaml:"join_chat_messages_by_character"`
	Multimodal                  string  `yaml:"multimodal"`
}

// The BackendConfig fields the chat handler reads (same yaml names and types).
type BackendConfig struct {
	Name            string                    `yaml:"name"`
	Roles           map[string]string         `yaml:"roles"`
	TemplateConfig  TemplateConfig            `yaml:"template"`
	FunctionsConfig functions.FunctionsConfig `yaml:"function"`
	SystemPrompt    string                    `yaml:"system_prompt"`
	Grammar         string                    `yaml:"grammar"`
	Cutstrings      []string                  `yaml:"cutstrings"`
	ExtractRegex    []string                  `yaml:"extract_regex"`
	TrimSpace       []string                  `yaml:"trimspace"`
	TrimSuffix      []string                  `yaml:"trimsuffix"`
	Parameters      struct {
		Echo bool `yaml:"echo"`
	} `yaml:"parameters"`

	functionCallString, functionCallNameString string
	ResponseFormatMap                          map[string]interface{}
}

// v2.24.0:core/config/backend_config.go lines 220-234 and 270-277.
func (c *BackendConfig) SetFunctionCallString(s string)     { c.functionCallString = s }
func (c *BackendConfig) SetFunctionCallNameString(s string) { c.functionCallNameString = s }
func (c *BackendConfig) ShouldUseFunctions() bool {
	return ((c.functionCallString != "none" || c.functionCallString == "") || c.ShouldCallSpecificFunction())
}
func (c *BackendConfig) ShouldCallSpecificFunction() bool {
	return len(c.functionCallNameString) > 0
}
func (c *BackendConfig) FunctionToCall() string {
	if c.functionCallNameString != "" &&
		c.functionCallNameString != "none" && c.functionCallNameString != "auto" {
		return c.functionCallNameString
	}
	return c.functionCallString
}

type input struct {
	ModelYAML string          `json:"model_yaml"`
	Request   json.RawMessage `json:"request"`
	Output    *string         `json:"output"`
}

type output struct {
	Prompt       string          `json:"prompt"`
	Grammar      string          `json:"grammar"`
	UseFunctions bool            `json:"use_functions"`
	Choices      []schema.Choice `json:"choices,omitempty"`
	// Set when LocalAI would run the model a second time (an "answer" without a message).
	SecondInference bool   `json:"second_inference,omitempty"`
	Error           string `json:"error,omitempty"`
}

func main() {
	// LocalAI's default log level (LOCALAI_LOG_LEVEL=info): the debug lines of
	// pkg/functions stay out of stderr, which carries only what went wrong.
	zerolog.SetGlobalLevel(zerolog.InfoLevel)
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fail(err)
	}
	var config BackendConfig
	if err := yaml.Unmarshal([]byte(in.ModelYAML), &config); err != nil {
		fail(err)
	}
	var req schema.OpenAIRequest
	if err := json.Unmarshal(in.Request, &req); err != nil {
		fail(err)
	}
	out, err := chat(&config, &req, in.Output)
	if err != nil {
		out.Error = err.Error()
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "localai-chat:", err)
	os.Exit(2)
}

// updateRequestConfig: the parts of v2.24.0:core/http/endpoints/openai/request.go that the
// chat handler depends on (lines 94-146, 157-170 for text content, 272-287).
func updateRequestConfig(config *BackendConfig, input *schema.OpenAIRequest) {
	if input.Grammar != "" {
		config.Grammar = input.Grammar
	}
	if input.ResponseFormat != nil {
		switch responseFormat := input.ResponseFormat.(type) {
		case map[string]interface{}:
			config.ResponseFormatMap = responseFormat
		}
	}
	if len(input.Tools) > 0 {
		for _, tool := range input.Tools {
			input.Functions = append(input.Functions, tool.Function)
		}
	}
	if input.ToolsChoice != nil {
		var toolChoice functions.Tool
		switch content := input.ToolsChoice.(type) {
		case string:
			_ = json.Unmarshal([]byte(content), &toolChoice)
		case map[string]interface{}:
			dat, _ := json.Marshal(content)
			_ = json.Unmarshal(dat, &toolChoice)
		}
		input.FunctionCall = map[string]interface{}{
			"name": toolChoice.Function.Name,
		}
	}
	for i, m := range input.Messages {
		switch content := m.Content.(type) {
		case string:
			input.Messages[i].StringContent = content
		case []interface{}:
			dat, _ := json.Marshal(content)
			c := []schema.Content{}
			json.Unmarshal(dat, &c)
			textContent := ""
			for _, pp := range c {
				if pp.Type == "text" {
					textContent += pp.Text
				}
			}
			input.Messages[i].StringContent = textContent
		}
	}
	switch fnc := input.FunctionCall.(type) {
	case string:
		if fnc != "" {
			config.SetFunctionCallString(fnc)
		}
	case map[string]interface{}:
		var name string
		n, exists := fnc["name"]
		if exists {
			nn, e := n.(string)
			if e {
				name = nn
			}
		}
		config.SetFunctionCallNameString(name)
	}
}

func chat(config *BackendConfig, input *schema.OpenAIRequest, llmOutput *string) (output, error) {
	updateRequestConfig(config, input)
	ml := templates.NewTemplateCache(os.TempDir() + "/localai-chat-no-template-files")
	var out output

	// v2.24.0:core/http/endpoints/openai/chat.go lines 186-297, as written there.
	funcs := input.Functions
	shouldUseFn := len(input.Functions) > 0 && config.ShouldUseFunctions()
	strictMode := false
	for _, f := range input.Functions {
		if f.Strict {
			strictMode = true
			break
		}
	}
	noActionName := "answer"
	noActionDescription := "use this action to answer without performing any action"
	if config.FunctionsConfig.NoActionFunctionName != "" {
		noActionName = config.FunctionsConfig.NoActionFunctionName
	}
	if config.FunctionsConfig.NoActionDescriptionName != "" {
		noActionDescription = config.FunctionsConfig.NoActionDescriptionName
	}
	if config.ResponseFormatMap != nil {
		d := schema.ChatCompletionResponseFormat{}
		dat, err := json.Marshal(config.ResponseFormatMap)
		if err != nil {
			return out, err
		}
		err = json.Unmarshal(dat, &d)
		if err != nil {
			return out, err
		}
		if d.Type == "json_object" {
			input.Grammar = functions.JSONBNF
		} else if d.Type == "json_schema" {
			d := schema.JsonSchemaRequest{}
			dat, err := json.Marshal(config.ResponseFormatMap)
			if err != nil {
				return out, err
			}
			err = json.Unmarshal(dat, &d)
			if err != nil {
				return out, err
			}
			fs := &functions.JSONFunctionStructure{
				AnyOf: []functions.Item{d.JsonSchema.Schema},
			}
			g, err := fs.Grammar(config.FunctionsConfig.GrammarOptions()...)
			if err == nil {
				input.Grammar = g
			}
		}
	}
	config.Grammar = input.Grammar
	switch {
	case (!config.FunctionsConfig.GrammarConfig.NoGrammar || strictMode) && shouldUseFn:
		noActionGrammar := functions.Function{
			Name:        noActionName,
			Description: noActionDescription,
			Parameters: map[string]interface{}{
				"properties": map[string]interface{}{
					"message": map[string]interface{}{
						"type":        "string",
						"description": "The message to reply the user with",
					}},
			},
		}
		if !config.FunctionsConfig.DisableNoAction {
			funcs = append(funcs, noActionGrammar)
		}
		if config.FunctionToCall() != "" {
			funcs = funcs.Select(config.FunctionToCall())
		}
		jsStruct := funcs.ToJSONStructure(config.FunctionsConfig.FunctionNameKey, config.FunctionsConfig.FunctionNameKey)
		g, err := jsStruct.Grammar(config.FunctionsConfig.GrammarOptions()...)
		if err == nil {
			config.Grammar = g
		}
	case input.JSONFunctionGrammarObject != nil:
		g, err := input.JSONFunctionGrammarObject.Grammar(config.FunctionsConfig.GrammarOptions()...)
		if err == nil {
			config.Grammar = g
		}
	default:
		if config.FunctionToCall() != "" {
			funcs = funcs.Select(config.FunctionToCall())
		}
	}

	// Lines 300-425: the prompt.
	var predInput string
	if !config.TemplateConfig.UseTokenizerTemplate || shouldUseFn {
		suppressConfigSystemPrompt := false
		mess := []string{}
		for messageIndex, i := range input.Messages {
			var content string
			role := i.Role
			if (i.FunctionCall != nil || i.ToolCalls != nil) && i.Role == "assistant" {
				roleFn := "assistant_function_call"
				r := config.Roles[roleFn]
				if r != "" {
					role = roleFn
				}
			}
			r := config.Roles[role]
			contentExists := i.Content != nil && i.StringContent != ""

			fcall := i.FunctionCall
			if len(i.ToolCalls) > 0 {
				fcall = i.ToolCalls
			}
			if config.TemplateConfig.ChatMessage != "" {
				chatMessageData := ChatMessageTemplateData{
					SystemPrompt: config.SystemPrompt,
					Role:         r,
					RoleName:     role,
					Content:      i.StringContent,
					FunctionCall: fcall,
					FunctionName: i.Name,
					LastMessage:  messageIndex == (len(input.Messages) - 1),
					Function:     config.Grammar != "" && (messageIndex == (len(input.Messages) - 1)),
					MessageIndex: messageIndex,
				}
				templatedChatMessage, err := ml.EvaluateTemplate(ChatMessageTemplate, config.TemplateConfig.ChatMessage, chatMessageData)
				if err != nil {
					// LocalAI logs this and renders the message without the template.
					fmt.Fprintf(os.Stderr, "localai-chat: chat_message template failed: %v\n", err)
				} else {
					if templatedChatMessage == "" {
						continue
					}
					content = templatedChatMessage
				}
			}
			marshalAnyRole := func(f any) {
				j, err := json.Marshal(f)
				if err == nil {
					if contentExists {
						content += "\n" + fmt.Sprint(r, " ", string(j))
					} else {
						content = fmt.Sprint(r, " ", string(j))
					}
				}
			}
			marshalAny := func(f any) {
				j, err := json.Marshal(f)
				if err == nil {
					if contentExists {
						content += "\n" + string(j)
					} else {
						content = string(j)
					}
				}
			}
			if content == "" {
				if r != "" {
					if contentExists {
						content = fmt.Sprint(r, i.StringContent)
					}
					if i.FunctionCall != nil {
						marshalAnyRole(i.FunctionCall)
					}
					if i.ToolCalls != nil {
						marshalAnyRole(i.ToolCalls)
					}
				} else {
					if contentExists {
						content = fmt.Sprint(i.StringContent)
					}
					if i.FunctionCall != nil {
						marshalAny(i.FunctionCall)
					}
					if i.ToolCalls != nil {
						marshalAny(i.ToolCalls)
					}
				}
				if contentExists && role == "system" {
					suppressConfigSystemPrompt = true
				}
			}
			mess = append(mess, content)
		}
		joinCharacter := "\n"
		if config.TemplateConfig.JoinChatMessagesByCharacter != nil {
			joinCharacter = *config.TemplateConfig.JoinChatMessagesByCharacter
		}
		predInput = strings.Join(mess, joinCharacter)

		templateFile := ""
		// (A "<model>.tmpl" file beside the weights: the package ships none.)
		if config.TemplateConfig.Chat != "" && !shouldUseFn {
			templateFile = config.TemplateConfig.Chat
		}
		if config.TemplateConfig.Functions != "" && shouldUseFn {
			templateFile = config.TemplateConfig.Functions
		}
		if templateFile != "" {
			templatedInput, err := ml.EvaluateTemplate(ChatPromptTemplate, templateFile, PromptTemplateData{
				SystemPrompt:         config.SystemPrompt,
				SuppressSystemPrompt: suppressConfigSystemPrompt,
				Input:                predInput,
				Functions:            funcs,
			})
			if err == nil {
				predInput = templatedInput
			} else {
				fmt.Fprintf(os.Stderr, "localai-chat: template failed: %v\n", err)
			}
		}
	}
	out.Prompt = predInput
	out.Grammar = config.Grammar
	out.UseFunctions = shouldUseFn
	if llmOutput == nil {
		return out, nil
	}

	// Lines 520-590: the non-streamed answer built from the backend's output.
	s := *llmOutput
	var c []schema.Choice
	if !shouldUseFn {
		c = append(c, schema.Choice{FinishReason: "stop", Index: 0, Message: &schema.Message{Role: "assistant", Content: &s}})
		out.Choices = c
		return out, nil
	}
	textContentToReturn := functions.ParseTextContent(s, config.FunctionsConfig)
	s = functions.CleanupLLMResult(s, config.FunctionsConfig)
	results := functions.ParseFunctionCall(s, config.FunctionsConfig)
	noActionsToRun := len(results) > 0 && results[0].Name == noActionName || len(results) == 0
	switch {
	case noActionsToRun:
		result, second := handleQuestion(config, results, s, predInput)
		out.SecondInference = second
		c = append(c, schema.Choice{
			Message: &schema.Message{Role: "assistant", Content: &result}})
	default:
		toolChoice := schema.Choice{
			Message: &schema.Message{
				Role: "assistant",
			},
		}
		if len(input.Tools) > 0 {
			toolChoice.FinishReason = "tool_calls"
		}
		for _, ss := range results {
			name, args := ss.Name, ss.Arguments
			if len(input.Tools) > 0 {
				toolChoice.Message.Content = textContentToReturn
				toolChoice.Message.ToolCalls = append(toolChoice.Message.ToolCalls,
					schema.ToolCall{
						ID:   "chatcmpl-id", // LocalAI: the response's uuid, the same for every call
						Type: "function",
						FunctionCall: schema.FunctionCall{
							Name:      name,
							Arguments: args,
						},
					},
				)
			} else {
				c = append(c, schema.Choice{
					FinishReason: "function_call",
					Message: &schema.Message{
						Role:    "assistant",
						Content: &textContentToReturn,
						FunctionCall: map[string]interface{}{
							"name":      name,
							"arguments": args,
						},
					},
				})
			}
		}
		if len(input.Tools) > 0 {
			c = append(c, toolChoice)
		}
	}
	out.Choices = c
	return out, nil
}

// v2.24.0:core/http/endpoints/openai/chat.go lines 617-651, up to the second inference,
// which is reported instead of run. The message goes through backend.Finetune.
func handleQuestion(config *BackendConfig, funcResults []functions.FuncCallResults, result, prompt string) (string, bool) {
	if len(funcResults) == 0 && result != "" {
		return result, false
	}
	arg := ""
	if len(funcResults) > 0 {
		arg = funcResults[0].Arguments
	}
	arguments := map[string]interface{}{}
	_ = json.Unmarshal([]byte(arg), &arguments)
	m, exists := arguments["message"]
	if exists {
		switch message := m.(type) {
		case string:
			if message != "" {
				return finetune(config, prompt, message), false
			}
		}
	}
	return "", true
}

// v2.24.0:core/backend/llm.go, Finetune.
func finetune(config *BackendConfig, input, prediction string) string {
	if config.Parameters.Echo {
		prediction = input + prediction
	}
	for _, c := range config.Cutstrings {
		prediction = regexp.MustCompile(c).ReplaceAllString(prediction, "")
	}
	var predResult string
	for _, r := range config.ExtractRegex {
		predResult += regexp.MustCompile(r).FindString(prediction)
	}
	if predResult != "" {
		prediction = predResult
	}
	for _, c := range config.TrimSpace {
		prediction = strings.TrimSpace(strings.TrimPrefix(prediction, c))
	}
	for _, c := range config.TrimSuffix {
		prediction = strings.TrimSpace(strings.TrimSuffix(prediction, c))
	}
	return prediction
}

// v2.24.0:pkg/model/template.go.
type PromptTemplateData struct {
	SystemPrompt         string
	SuppressSystemPrompt bool
	Input                string
	Instruction          string
	Functions            []functions.Function
	MessageIndex         int
}

type ChatMessageTemplateData struct {
	SystemPrompt string
	Role         string
	RoleName     string
	FunctionName string
	Content      string
	MessageIndex int
	Function     bool
	FunctionCall interface{}
	LastMessage  bool
}
